"""The roles template.yaml gives, read from the SAM translator's expansion: what each function may do,
without running anything (tests/integration/test_iam.py runs every path under these roles)."""

from __future__ import annotations

from typing import Any

import pytest

from expensebot_tools.project.iam import Role, expand_template, function_roles, managed_policy, matches_pattern
from expensebot_tools.project.template import Resolver, Template

ACCOUNT_PREFIX = "arn:aws:sqs:us-east-1:123456789012:"
WORKERS = {
    "DefaultWorkerFunction": "Default",
    "ReportsWorkerFunction": "Reports",
    "RecurringWorkerFunction": "Recurring",
    "MaintenanceWorkerFunction": "Maintenance",
    "NotificationsWorkerFunction": "Notifications",
}


def queue_arn(logical_id: str) -> str:
    return ACCOUNT_PREFIX + logical_id


@pytest.fixture(scope="module")
def expanded() -> dict[str, Any]:
    return expand_template()


def mapping_uuid(function_id: str) -> str:
    return f"uuid-of-{function_id}"


def mapping_arn(uuid: str) -> str:
    return f"arn:aws:lambda:us-east-1:123456789012:event-source-mapping:{uuid}"


@pytest.fixture(scope="module")
def resolver(template: Template) -> Resolver:
    refs: dict[str, Any] = {}
    attributes: dict[tuple[str, str], Any] = {}
    for logical_id in template.queues:
        refs[logical_id] = f"https://sqs.us-east-1.amazonaws.com/123456789012/{logical_id}"
        attributes[(logical_id, "Arn")] = queue_arn(logical_id)
        attributes[(logical_id, "QueueName")] = logical_id
    for function_id in template.functions:
        refs[function_id] = function_id
        attributes[(function_id, "Arn")] = f"arn:aws:lambda:us-east-1:123456789012:function:{function_id}"
    for subscription in template.subscriptions():  # SAM's <Function>Queue mapping: !Ref gives its UUID
        refs[f"{subscription.function_id}Queue"] = mapping_uuid(subscription.function_id)
    return Resolver(parameters=template.parameter_defaults(), refs=refs, attributes=attributes,
                    conditions=template.raw.get("Conditions", {}))


@pytest.fixture(scope="module")
def roles(expanded: dict[str, Any], resolver: Resolver, template: Template) -> dict[str, Role]:
    return function_roles(expanded, resolver, template.functions)


def test_patterns_match_as_iam_matches_them():
    assert matches_pattern("sqs:SendMessage*", "sqs:sendmessage", ignore_case=True)
    assert matches_pattern("arn:aws:secretsmanager:*:secret:token-*", "arn:aws:secretsmanager:x:secret:token-AbC",
                           ignore_case=False)
    assert not matches_pattern("arn:aws:sqs:r:1:Queue", "arn:aws:sqs:r:1:QueueDLQ", ignore_case=False)


def test_every_function_has_a_role_of_its_own(roles, template):
    assert set(roles) == set(template.functions)
    assert len({role.name for role in roles.values()}) == len(roles)


def test_each_worker_may_delay_redelivery_on_its_own_queue_only(roles):
    for function_id, queue in WORKERS.items():
        role = roles[function_id]
        assert role.allows("sqs:ChangeMessageVisibility", queue_arn(f"{queue}Queue")), function_id
        others = [q for q in WORKERS.values() if q != queue]
        assert not any(role.allows("sqs:ChangeMessageVisibility", queue_arn(f"{q}Queue")) for q in others)


def test_each_worker_may_park_in_its_own_dlq_and_re_send_to_its_own_queue(roles):
    for function_id, queue in WORKERS.items():
        role = roles[function_id]
        assert role.allows("sqs:SendMessage", queue_arn(f"{queue}DeadLetterQueue")), function_id
        assert role.allows("sqs:SendMessage", queue_arn(f"{queue}Queue")), function_id
        assert not role.allows("sqs:SendMessage", queue_arn("JobFailureQueue")), function_id


def test_no_function_needs_to_ask_sqs_for_a_queue_url(roles):
    # Every URL is in the environment (QUEUE_URL_*, DEAD_LETTER_QUEUE_URL_*).
    assert [fid for fid, role in roles.items() if role.allows("sqs:GetQueueUrl", queue_arn("DefaultQueue"))] == []


def test_the_webhook_may_enqueue_reports_and_nothing_else(roles, template):
    webhook = roles["WebhookFunction"]
    allowed = [q for q in template.queues if webhook.allows("sqs:SendMessage", queue_arn(q))]
    assert allowed == ["ReportsQueue"]


def test_only_the_workers_that_send_to_telegram_read_the_bot_token(roles):
    token = "arn:aws:secretsmanager:us-east-1:123456789012:secret:expensebot/telegram-bot-token-AbCdEf"
    readers = sorted(fid for fid, role in roles.items() if role.allows("secretsmanager:GetSecretValue", token))
    assert readers == ["DefaultWorkerFunction", "NotificationsWorkerFunction", "RecurringWorkerFunction",
                       "ReportsWorkerFunction", "WebhookFunction"]


def test_the_job_functions_may_send_a_failed_event_to_job_failure_queue_and_their_own_queue_only(roles, template):
    own = {"SendMonthlyReportsFunction": "ReportsQueue", "CheckBudgetLimitsFunction": "NotificationsQueue",
           "ProcessRecurringPaymentsFunction": "RecurringQueue", "CleanupOldExpensesFunction": "MaintenanceQueue",
           "SendDailyAdminReportFunction": "ReportsQueue"}
    for function_id, queue in own.items():
        allowed = sorted(q for q in template.queues if roles[function_id].allows("sqs:SendMessage", queue_arn(q)))
        assert allowed == sorted({queue, "JobFailureQueue"}), function_id


def test_the_operator_policy_covers_every_queue_and_dlq_and_the_stacks_schedules(expanded, resolver, template):
    operator = managed_policy(expanded, "OperatorPolicy", resolver)
    for queue in template.queues:
        for action in ("sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:PurgeQueue", "sqs:SendMessage"):
            assert operator.allows(action, queue_arn(queue)), (action, queue)
    schedule = "arn:aws:scheduler:us-east-1:123456789012:schedule/default/expensebot-dev-check_budget_limits"
    assert operator.allows("scheduler:UpdateSchedule", schedule)
    assert not operator.allows("scheduler:UpdateSchedule", schedule.replace("expensebot-dev", "other-app"))
    # ops run --at creates one-off schedules of the stack's own, and no others.
    once = f"{schedule.rsplit('/', 1)[0]}/expensebot-dev-once-check_budget_limits-202611302000"
    assert operator.allows("scheduler:CreateSchedule", once)
    assert not operator.allows("scheduler:CreateSchedule", schedule)
    assert not operator.allows("scheduler:CreateSchedule", once.replace("expensebot-dev", "other-app"))
    assert not operator.allows("sqs:DeleteQueue", queue_arn("DefaultQueue"))


def test_the_operator_may_pause_each_worker_and_read_the_stack_but_nothing_else(expanded, resolver, template):
    operator = managed_policy(expanded, "OperatorPolicy", resolver)
    workers = [s.function_id for s in template.subscriptions()]
    assert len(workers) == 5
    for function_id in workers:
        for action in ("lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping"):
            assert operator.allows(action, mapping_arn(mapping_uuid(function_id))), (action, function_id)
    assert not operator.allows("lambda:UpdateEventSourceMapping", mapping_arn("some-other-mapping"))
    assert not operator.allows("lambda:DeleteEventSourceMapping", mapping_arn(mapping_uuid(workers[0])))
    stack = "arn:aws:cloudformation:us-east-1:123456789012:stack/expensebot-local/0f1e2d3c"
    assert operator.allows("cloudformation:ListStackResources", stack)
    assert not operator.allows("cloudformation:ListStackResources", stack.replace("expensebot-local", "other"))
    assert operator.allows("lambda:InvokeFunction",
                           "arn:aws:lambda:us-east-1:123456789012:function:CheckBudgetLimitsFunction")
    assert not operator.allows("lambda:InvokeFunction",
                               "arn:aws:lambda:us-east-1:123456789012:function:WebhookFunction")


def test_without_vpc_subnets_the_boundary_takes_ec2_from_every_role(roles):
    assert not [fid for fid, role in roles.items() if role.allows("ec2:CreateNetworkInterface", "*")]
    assert all(role.allows("logs:PutLogEvents", "*") for role in roles.values())


def test_with_vpc_subnets_every_role_may_manage_its_network_interfaces(resolver, template):
    from dataclasses import replace

    parameters = {"VpcSubnetIds": "subnet-1,subnet-2", "VpcSecurityGroupIds": "sg-1"}
    expanded_in_vpc = expand_template(parameters=parameters)
    in_vpc = replace(resolver, parameters={**resolver.parameters, **parameters})
    roles_in_vpc = function_roles(expanded_in_vpc, in_vpc, template.functions)
    assert all(role.allows("ec2:CreateNetworkInterface", "*") for role in roles_in_vpc.values())
