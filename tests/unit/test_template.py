"""Invariants of template.yaml: each test reads the real values from the template, so a change that breaks
a rule (a queue without redrive, a schedule in UTC, a worker allowed to write to every queue) fails here
before it reaches a deploy."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from expensebot_tools.local.events import schedule_event
from expensebot_tools.project.template import PROJECT_ROOT, Template

# The seed's Celery queues, as the template names the SQS queue that replaces each one.
CELERY_QUEUES = {
    "DefaultQueue": "default",
    "ReportsQueue": "reports",
    "RecurringQueue": "recurring",
    "MaintenanceQueue": "maintenance",
    "NotificationsQueue": "notifications",
}

# The seed's beat schedule: job → (ScheduleExpression, the queue its units go to).
SEED_JOBS = {
    "send_monthly_reports": ("cron(0 20 * * ? *)", "ReportsQueue"),  # daily 20:00; last day checked in code
    "check_budget_limits": ("cron(0/30 * * * ? *)", "NotificationsQueue"),  # every 30 minutes
    "process_recurring_payments": ("cron(0 12 * * ? *)", "RecurringQueue"),  # daily 12:00
    "cleanup_old_expenses": ("cron(0 3 ? * SUN *)", "MaintenanceQueue"),  # Sunday 03:00
    "send_daily_admin_report": ("cron(0 10 * * ? *)", "ReportsQueue"),  # daily 10:00
}

SCHEDULER_PLACEHOLDERS = (
    "<aws.scheduler.scheduled-time>",
    "<aws.scheduler.execution-id>",
    "<aws.scheduler.attempt-number>",
)

CELERY_TASK_TIME_LIMIT = 600
API_GATEWAY_TIMEOUT_SECONDS = 30
SQS_MAX_RETENTION_SECONDS = 14 * 24 * 3600
WEBHOOK_FUNCTION = "WebhookFunction"


# ---------------------------------------------------------------- helpers reading the template


def _events(template: Template, function_id: str, event_type: str) -> list[dict[str, Any]]:
    events = template.functions[function_id].properties.get("Events", {})
    return [event["Properties"] for event in events.values() if event["Type"] == event_type]


def _scheduled_functions(template: Template) -> list[str]:
    return [fid for fid in template.functions if _events(template, fid, "ScheduleV2")]


def _worker_functions(template: Template) -> list[str]:
    return [fid for fid in template.functions if _events(template, fid, "SQS")]


def _job_of(template: Template, function_id: str) -> str:
    (schedule,) = _events(template, function_id, "ScheduleV2")
    return schedule_event(schedule["Input"], datetime(2026, 3, 31, 17, 0, tzinfo=UTC))["job"]


def _own_variables(template: Template, function_id: str) -> dict[str, Any]:
    return template.functions[function_id].properties.get("Environment", {}).get("Variables", {})


def _global_variables(template: Template) -> dict[str, Any]:
    return template.globals.get("Environment", {}).get("Variables", {})


def _send_queues(template: Template, function_id: str) -> set[str]:
    """The queues the function's SQSSendMessagePolicy entries name (by logical id)."""
    names = set()
    for policy in template.functions[function_id].properties.get("Policies", []):
        if isinstance(policy, dict) and "SQSSendMessagePolicy" in policy:
            queue_name = policy["SQSSendMessagePolicy"]["QueueName"]
            assert "Fn::GetAtt" in queue_name, f"{function_id}: name the queue with !GetAtt, got {queue_name!r}"
            names.add(queue_name["Fn::GetAtt"][0])
    return names


def _get_att_target(value: Any, attribute: str) -> str:
    assert isinstance(value, dict) and "Fn::GetAtt" in value, f"expected !GetAtt <Queue>.{attribute}, got {value!r}"
    target, attr = value["Fn::GetAtt"]
    assert attr == attribute, f"expected !GetAtt {target}.{attribute}, got {target}.{attr}"
    return target


def _dead_letter_queue_of(template: Template, queue_id: str) -> str:
    redrive = template.queues[queue_id]["Properties"].get("RedrivePolicy")
    assert redrive, f"{queue_id} has no RedrivePolicy"
    return _get_att_target(redrive["deadLetterTargetArn"], "Arn")


def _requirement_name(line: str) -> str:
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    assert name, f"cannot read a package name from {line!r}"
    return re.sub(r"[-_.]+", "-", name.group(1)).lower()


# ---------------------------------------------------------------- the template as a whole


def test_cfn_lint_reports_no_errors_in_the_template(template):
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    completed = subprocess.run(
        [str(cfn_lint), str(template.path)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, f"cfn-lint exited {completed.returncode}:\n{completed.stdout}{completed.stderr}"


def test_every_function_handler_resolves_to_a_callable_in_its_code_uri(template):
    assert template.functions, "the template defines no functions"
    for function_id, spec in template.functions.items():
        assert spec.module_path.is_file(), f"{function_id}: {spec.module_path} does not exist"
        handler = template.load_handler(function_id)
        assert callable(handler), f"{function_id}: {spec.handler} is not callable"


# ---------------------------------------------------------------- queues


def test_every_consumed_queue_redrives_to_a_template_queue_after_at_least_five_receives(template):
    subscriptions = template.subscriptions()
    assert subscriptions, "no function consumes a queue"
    for subscription in subscriptions:
        queue = template.queues[subscription.queue_id]["Properties"]
        dead_letter_queue = _dead_letter_queue_of(template, subscription.queue_id)
        assert dead_letter_queue in template.queues, f"{subscription.queue_id}: DLQ {dead_letter_queue} is not a queue"
        assert dead_letter_queue != subscription.queue_id
        assert int(queue["RedrivePolicy"]["maxReceiveCount"]) >= 5, subscription.queue_id


def test_every_consumed_queue_hides_a_message_for_six_times_its_consumers_timeout(template):
    for subscription in template.subscriptions():
        timeout = template.functions[subscription.function_id].timeout
        visibility = int(template.queues[subscription.queue_id]["Properties"].get("VisibilityTimeout", 30))
        assert visibility >= 6 * timeout, (
            f"{subscription.queue_id}: VisibilityTimeout {visibility} < 6 x {subscription.function_id}'s {timeout} s"
        )


def test_every_dead_letter_and_failure_queue_keeps_messages_fourteen_days(template):
    dead_letter_queues = {_dead_letter_queue_of(template, s.queue_id) for s in template.subscriptions()}
    for function_id in _scheduled_functions(template):
        props = template.functions[function_id].properties
        (schedule,) = _events(template, function_id, "ScheduleV2")
        dead_letter_queues.add(_get_att_target(schedule["DeadLetterConfig"]["Arn"], "Arn"))
        failure = props["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
        dead_letter_queues.add(_get_att_target(failure["Destination"], "Arn"))
    assert len(dead_letter_queues) >= 5 + 1
    for queue_id in sorted(dead_letter_queues):
        retention = template.queues[queue_id]["Properties"].get("MessageRetentionPeriod")
        assert retention == SQS_MAX_RETENTION_SECONDS, f"{queue_id} keeps messages {retention} s"


def test_there_are_exactly_five_work_queues_named_after_the_celery_queues(template):
    work_queues = {qid for qid, q in template.queues.items() if "RedrivePolicy" in q.get("Properties", {})}
    assert work_queues == set(CELERY_QUEUES)
    consumed = {s.queue_id for s in template.subscriptions()}
    assert consumed == set(CELERY_QUEUES)


def test_each_celery_queue_is_consumed_by_exactly_one_worker_that_knows_its_queue_name(template):
    for queue_id, celery_name in CELERY_QUEUES.items():
        consumers = [s.function_id for s in template.subscriptions() if s.queue_id == queue_id]
        assert len(consumers) == 1, f"{queue_id} is consumed by {consumers}"
        assert _own_variables(template, consumers[0]).get("QUEUE_NAME") == celery_name, consumers[0]


def test_every_queue_event_reports_batch_item_failures_and_caps_its_concurrency(template):
    for function_id in _worker_functions(template):
        for event in _events(template, function_id, "SQS"):
            assert event.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], function_id
            concurrency = (event.get("ScalingConfig") or {}).get("MaximumConcurrency")
            assert concurrency is not None and 2 <= int(concurrency) <= 1000, (
                f"{function_id}: MaximumConcurrency {concurrency!r} outside 2..1000"
            )


# ---------------------------------------------------------------- schedules


def test_every_schedule_runs_in_the_time_zone_parameter(template):
    schedules = template.schedules()
    assert len(schedules) == len(SEED_JOBS)
    for schedule in schedules:
        assert schedule.timezone == {"Ref": "TimeZone"}, f"{schedule.function_id}: {schedule.timezone!r}"


def test_every_schedule_has_a_retry_policy_and_a_dead_letter_queue(template):
    for function_id in _scheduled_functions(template):
        (schedule,) = _events(template, function_id, "ScheduleV2")
        retry = schedule.get("RetryPolicy") or {}
        assert "MaximumRetryAttempts" in retry and "MaximumEventAgeInSeconds" in retry, function_id
        assert _get_att_target(schedule["DeadLetterConfig"]["Arn"], "Arn") in template.queues, function_id


def test_every_schedule_input_is_json_carrying_the_schedulers_context_attributes(template):
    for schedule in template.schedules():
        for placeholder in SCHEDULER_PLACEHOLDERS:
            assert placeholder in schedule.input, f"{schedule.function_id}: Input lacks {placeholder}"
        event = schedule_event(schedule.input, datetime(2026, 3, 31, 17, 0, tzinfo=UTC), attempt=2,
                               execution_id="0b7c9f9e-2f5c-4a8e-9a7d-3c1e5b2d4f6a")
        assert event["scheduled_time"] == "2026-03-31T17:00:00Z"
        assert event["execution_id"] == "0b7c9f9e-2f5c-4a8e-9a7d-3c1e5b2d4f6a"
        assert event["attempt"] == "2"
        assert isinstance(event["job"], str) and event["job"]


def test_every_scheduled_function_retries_a_failed_run_then_sends_it_to_a_failure_destination(template):
    for function_id in _scheduled_functions(template):
        config = template.functions[function_id].properties.get("EventInvokeConfig") or {}
        assert "MaximumRetryAttempts" in config and "MaximumEventAgeInSeconds" in config, function_id
        on_failure = (config.get("DestinationConfig") or {}).get("OnFailure") or {}
        assert on_failure.get("Destination"), f"{function_id} has no OnFailure destination"
        if on_failure.get("Type") == "SQS":
            assert _get_att_target(on_failure["Destination"], "Arn") in template.queues


def test_the_schedules_run_exactly_the_five_jobs_of_the_seed(template):
    assert {_job_of(template, fid) for fid in _scheduled_functions(template)} == set(SEED_JOBS)


def test_check_budget_limits_is_a_registered_job_and_every_registered_job_is_scheduled(template):
    from expensebot.scheduling import jobs

    registered = jobs()
    assert "check_budget_limits" in registered
    assert set(registered) <= {_job_of(template, fid) for fid in _scheduled_functions(template)}


def test_every_registered_jobs_queue_is_the_one_its_function_may_send_to(template):
    from expensebot.scheduling import jobs

    registered = jobs()
    for function_id in _scheduled_functions(template):
        job = _job_of(template, function_id)
        if job in registered:
            queue_id = next(qid for qid, name in CELERY_QUEUES.items() if name == registered[job].queue)
            assert _send_queues(template, function_id) == {queue_id}, function_id


def test_every_scheduled_functions_job_name_variable_equals_the_job_in_its_input(template):
    for function_id in _scheduled_functions(template):
        assert _own_variables(template, function_id).get("JOB_NAME") == _job_of(template, function_id), function_id


def test_the_schedule_expressions_are_the_seeds_times(template):
    expressions = {_job_of(template, s.function_id): s.expression for s in template.schedules()}
    assert expressions == {job: expression for job, (expression, _) in SEED_JOBS.items()}


# ---------------------------------------------------------------- time zone and time limits


def test_the_time_zone_parameter_defaults_to_moscow(template):
    assert template.raw["Parameters"]["TimeZone"]["Default"] == "Europe/Moscow"


def test_globals_pass_the_time_zone_to_every_function_as_app_timezone(template):
    assert _global_variables(template).get("APP_TIMEZONE") == {"Ref": "TimeZone"}
    for function_id in template.functions:
        assert "APP_TIMEZONE" not in _own_variables(template, function_id), f"{function_id} overrides APP_TIMEZONE"


def test_every_job_and_worker_function_times_out_at_celerys_task_time_limit(template):
    functions = _scheduled_functions(template) + _worker_functions(template)
    assert len(functions) == len(SEED_JOBS) + len(CELERY_QUEUES)
    for function_id in functions:
        assert template.functions[function_id].timeout == CELERY_TASK_TIME_LIMIT, function_id
    hard_limit = _global_variables(template).get("HARD_TIME_LIMIT_SECONDS")
    assert int(hard_limit) == CELERY_TASK_TIME_LIMIT


def test_the_soft_time_limit_comes_from_a_parameter_defaulting_to_300_seconds(template):
    assert int(template.raw["Parameters"]["SoftTimeLimitSeconds"]["Default"]) == 300
    assert _global_variables(template).get("SOFT_TIME_LIMIT_SECONDS") == {"Ref": "SoftTimeLimitSeconds"}
    for function_id in template.functions:
        assert "SOFT_TIME_LIMIT_SECONDS" not in _own_variables(template, function_id), function_id


RETENTION_PARAMETERS = {
    "ProcessedUpdatesRetentionDays": "processed_updates_retention_days",
    "NotificationsRetentionDays": "notifications_retention_days",
    "JobRunsRetentionDays": "job_runs_retention_days",
}


@pytest.mark.parametrize(("parameter", "field"), RETENTION_PARAMETERS.items())
def test_each_bookkeeping_retention_parameter_has_the_settings_floor_and_default_and_reaches_every_function(
    template, parameter, field
):
    from expensebot.config import RETENTION_FLOORS, Settings

    spec = template.raw["Parameters"][parameter]
    assert int(spec["MinValue"]) == RETENTION_FLOORS[field][0]
    assert int(spec["Default"]) == Settings.model_fields[field].default
    assert _global_variables(template).get(Settings.model_fields[field].validation_alias) == {"Ref": parameter}


def test_the_notifications_floor_covers_a_message_in_its_dlq_then_redriven_to_its_queue(template):
    # A standard queue's DLQ keeps a message for its retention counted from the first enqueue; a redrive
    # gives it its queue's retention afresh (SQS Developer Guide, "dead-letter queue retention").
    from expensebot.config import RETENTION_FLOORS

    def retention(queue_id: str) -> int:
        return int(template.queues[queue_id]["Properties"]["MessageRetentionPeriod"])

    longest = max(retention(_dead_letter_queue_of(template, q)) + retention(q) for q in CELERY_QUEUES)
    assert RETENTION_FLOORS["notifications_retention_days"][0] * 86400 >= longest


# ---------------------------------------------------------------- least privilege and secrets


def test_each_job_function_may_send_only_to_the_queue_its_job_enqueues_to(template):
    for function_id in _scheduled_functions(template):
        _, queue_id = SEED_JOBS[_job_of(template, function_id)]
        assert _send_queues(template, function_id) == {queue_id}, function_id


def test_each_worker_may_send_only_to_its_own_queue_and_its_own_dead_letter_queue(template):
    for subscription in template.subscriptions():
        own = {subscription.queue_id, _dead_letter_queue_of(template, subscription.queue_id)}
        assert _send_queues(template, subscription.function_id) == own, subscription.function_id


def test_no_parameter_takes_a_token_or_secret_in_plain_text(template):
    for name in template.raw["Parameters"]:
        if re.search(r"token|secret", name, re.IGNORECASE):
            assert name.endswith(("SecretName", "SecretArn")), f"parameter {name} looks like a plain-text secret"


def test_the_bot_token_and_webhook_secret_reach_the_functions_only_as_secret_names(template):
    assert _global_variables(template).get("TELEGRAM_BOT_TOKEN_SECRET_NAME") == {"Ref": "BotTokenSecretName"}
    assert _own_variables(template, WEBHOOK_FUNCTION).get("WEBHOOK_SECRET_NAME") == {"Ref": "WebhookSecretName"}
    scopes = {"Globals": _global_variables(template)}
    scopes.update({fid: _own_variables(template, fid) for fid in template.functions})
    for scope, variables in scopes.items():
        for name, value in variables.items():
            if re.search(r"TOKEN|SECRET", name) and not name.endswith(("_SECRET_NAME", "_SECRET_ARN")):
                # A blank declaration (so `sam local invoke --env-vars` may fill it) carries no secret.
                assert value == "", f"{scope}: {name} carries a token or secret in plain text"


# ---------------------------------------------------------------- the webhook


def test_the_webhook_publishes_an_alias_with_snapstart_on_a_python_312_or_later_runtime(template):
    props = template.functions[WEBHOOK_FUNCTION].properties
    assert props.get("AutoPublishAlias")
    assert props.get("SnapStart") == {"ApplyOn": "PublishedVersions"}
    runtime = props.get("Runtime", template.globals.get("Runtime"))
    match = re.fullmatch(r"python3\.(\d+)", str(runtime))
    assert match and int(match.group(1)) >= 12, f"SnapStart for Python needs python3.12+, got {runtime!r}"


def test_the_webhook_answers_telegram_on_post_within_api_gateways_30_seconds(template):
    (event,) = _events(template, WEBHOOK_FUNCTION, "HttpApi")
    assert event["Method"].upper() == "POST"
    timeout = template.functions[WEBHOOK_FUNCTION].timeout
    assert timeout < API_GATEWAY_TIMEOUT_SECONDS
    # The integration must outlast the function, or API Gateway gives up on a run that still stores.
    integration_ms = int(event.get("TimeoutInMillis", API_GATEWAY_TIMEOUT_SECONDS * 1000))
    assert timeout * 1000 < integration_ms <= API_GATEWAY_TIMEOUT_SECONDS * 1000


# ---------------------------------------------------------------- the layer


def test_the_layers_are_built_for_the_functions_runtime(template):
    layers = template.of_type("AWS::Serverless::LayerVersion")
    assert set(layers) == {"ExpenseBotLayer", "ReportsLayer"}
    runtime = template.globals["Runtime"]
    for layer in layers.values():
        assert runtime in layer["Properties"]["CompatibleRuntimes"]
        assert layer["Metadata"]["BuildMethod"] == runtime
    assert template.globals["Layers"] == [{"Ref": "ExpenseBotLayer"}]


def test_only_the_reports_worker_carries_the_reports_layer(template):
    """matplotlib and openpyxl (numpy with them, most of the size) are in the package of the one function that
    draws reports and writes exports; SAM puts Globals' layer first and the function's own after it."""
    carrying = {fid for fid, spec in template.functions.items()
                if {"Ref": "ReportsLayer"} in spec.properties.get("Layers", [])}
    assert carrying == {"ReportsWorkerFunction"}


def _requirements(path: Path) -> set[str]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return {_requirement_name(line) for line in lines}


def test_the_layer_requirements_match_the_project_dependencies_except_boto3(template):
    layer = _requirements(template.root / "layers" / "expensebot" / "requirements.txt")
    pyproject = tomllib.loads((template.root / "pyproject.toml").read_text(encoding="utf-8"))
    project = {_requirement_name(dep) for dep in pyproject["project"]["dependencies"]}
    assert "boto3" in project and "boto3" not in layer
    assert layer == project - {"boto3"}


def test_the_reports_layer_requirements_match_the_reports_extra(template):
    layer = _requirements(template.root / "layers" / "reports" / "requirements.txt")
    pyproject = tomllib.loads((template.root / "pyproject.toml").read_text(encoding="utf-8"))
    extra = {_requirement_name(dep) for dep in pyproject["project"]["optional-dependencies"]["reports"]}
    assert layer == extra == {"matplotlib", "openpyxl"}


# ---------------------------------------------------------------- cold start: aiogram only in the webhook

_REPORT_AIOGRAM = """
import json, sys
from pathlib import Path
from expensebot_tools.project.template import load_module
load_module(Path(sys.argv[1]))
print(json.dumps(any(name.startswith("aiogram") for name in sys.modules)))
"""


@pytest.fixture(scope="module")
def modules_importing_aiogram(template) -> dict[Path, bool]:
    """Each distinct handler module imported in a fresh interpreter (in parallel): does it pull in aiogram?"""
    paths = sorted({spec.module_path for spec in template.functions.values()})
    running = {
        path: subprocess.Popen(
            [sys.executable, "-c", _REPORT_AIOGRAM, str(path)],
            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for path in paths
    }
    found = {}
    for path, process in running.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"importing {path} failed:\n{err}"
        found[path] = json.loads(out.strip().splitlines()[-1])
    return found


def test_job_and_worker_handler_modules_do_not_import_aiogram(template, modules_importing_aiogram):
    webhook_code = template.root / "functions" / "webhook"
    others = {fid: spec for fid, spec in template.functions.items() if spec.code_uri != webhook_code}
    assert len(others) == len(SEED_JOBS) + len(CELERY_QUEUES)
    for function_id, spec in others.items():
        assert modules_importing_aiogram[spec.module_path] is False, f"{function_id} imports aiogram"


def test_the_webhook_handler_module_does_import_aiogram(template, modules_importing_aiogram):
    assert modules_importing_aiogram[template.functions[WEBHOOK_FUNCTION].module_path] is True
