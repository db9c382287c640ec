"""The monitoring part of template.yaml: the dashboard and the alarms must point at resources the template
really creates (a renamed queue or function must fail here, not show an empty graph or an alarm that never
fires), every failure path must have an alarm, and samconfig.toml must deploy this template."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from expensebot_tools.project.template import PROJECT_ROOT, Resolver, Template

CLOUDWATCH_MAX_METRICS_PER_MATH_ALARM = 10
SEED_APP_METRICS = {
    "MessagesSent", "RetriedAfter429", "BlockedUsers", "FailedSends", "HeldBack",
    "JobFailures", "ExpensesDeleted", "RetriedTasks", "ParkedTasks",
}


# ---------------------------------------------------------------- resolving against the template's own resources


class _Attributes(Mapping[tuple[str, str], str]):
    """!GetAtt of any resource in the template resolves to "att:Id.Attr"; of anything else, it fails."""

    def __init__(self, resources: Mapping[str, Any]) -> None:
        self._resources = resources

    def __getitem__(self, key: tuple[str, str]) -> str:
        if key[0] not in self._resources:
            raise KeyError(key)
        return f"att:{key[0]}.{key[1]}"

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and key[0] in self._resources

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _resolver(template: Template, **parameters: Any) -> Resolver:
    return Resolver(
        parameters={**template.parameter_defaults(), **parameters},
        refs={logical_id: f"ref:{logical_id}" for logical_id in template.resources},
        attributes=_Attributes(template.resources),
        conditions=template.raw.get("Conditions", {}),
    )


def _of_type(template: Template, marker: str, resource_type: str) -> str:
    """The logical id behind a resolved "ref:Id" / "att:Id.Attr", checked to be of the given type."""
    match = re.fullmatch(r"(?:ref|att):(\w+)(?:\.(\w+))?", marker)
    assert match, f"{marker!r} is not a reference to a template resource"
    logical_id = match.group(1)
    assert template.resources[logical_id]["Type"] == resource_type, f"{logical_id} is not a {resource_type}"
    return logical_id


def _queue_of(template: Template, value: str) -> str:
    assert value.startswith("att:") and value.endswith(".QueueName"), f"{value!r}: a queue's name is !GetAtt .QueueName"
    return _of_type(template, value, "AWS::SQS::Queue")


def _function_of(template: Template, value: str) -> str:
    assert value.startswith("ref:"), f"{value!r}: a function's name is its !Ref"
    return _of_type(template, value, "AWS::Serverless::Function")


# ---------------------------------------------------------------- what the template declares


def _scheduled_functions(template: Template) -> set[str]:
    return {schedule.function_id for schedule in template.schedules()}


def _worker_functions(template: Template) -> set[str]:
    return {subscription.function_id for subscription in template.subscriptions()}


def _work_queues(template: Template) -> set[str]:
    return {subscription.queue_id for subscription in template.subscriptions()}


def _dead_letter_queues(template: Template) -> set[str]:
    """Every queue the template parks failures in: redrive targets, schedule DLQs, job failure destinations."""
    found = set()
    for queue in template.queues.values():
        redrive = queue["Properties"].get("RedrivePolicy")
        if redrive:
            found.add(redrive["deadLetterTargetArn"]["Fn::GetAtt"][0])
    for spec in template.functions.values():
        for event in spec.properties.get("Events", {}).values():
            dead_letter = event["Properties"].get("DeadLetterConfig")
            if dead_letter:
                found.add(dead_letter["Arn"]["Fn::GetAtt"][0])
        on_failure = spec.properties.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure")
        if on_failure:
            found.add(on_failure["Destination"]["Fn::GetAtt"][0])
    return found


def _schedule_groups(template: Template) -> set[str]:
    return {
        str(event["Properties"].get("GroupName", "default"))
        for spec in template.functions.values()
        for event in spec.properties.get("Events", {}).values()
        if event["Type"] == "ScheduleV2"
    }


def _metric_names_the_code_emits() -> set[str]:
    names = set()
    for path in (PROJECT_ROOT / "layers" / "expensebot" / "expensebot").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r'add_metric\(name="(\w+)"', text))
        names |= set(re.findall(r'\bcount\("(\w+)"', text))
    return names


# ---------------------------------------------------------------- the dashboard


@pytest.fixture(scope="module")
def dashboard(template: Template) -> dict[str, Any]:
    (resource,) = template.of_type("AWS::CloudWatch::Dashboard").values()
    body = _resolver(template).resolve(resource["Properties"]["DashboardBody"])
    return json.loads(body)


def _metric_rows(dashboard: dict[str, Any]) -> list[tuple[str, str, dict[str, str], dict[str, Any]]]:
    rows = []
    for widget in dashboard["widgets"]:
        if widget["type"] != "metric":
            continue
        for row in widget["properties"]["metrics"]:
            options = row[-1] if isinstance(row[-1], dict) else {}
            names = [item for item in row if not isinstance(item, dict)]
            namespace, metric, *pairs = names
            rows.append((namespace, metric, dict(zip(pairs[::2], pairs[1::2], strict=True)), options))
    return rows


def test_every_metric_on_the_dashboard_names_a_resource_of_the_template(template, dashboard):
    rows = _metric_rows(dashboard)
    assert rows
    for namespace, metric, dimensions, _ in rows:
        if namespace == "AWS/SQS":
            _queue_of(template, dimensions["QueueName"])
        elif namespace == "AWS/Lambda":
            _function_of(template, dimensions["FunctionName"])
        elif namespace == "AWS/Scheduler":
            assert {dimensions["ScheduleGroup"]} == _schedule_groups(template), metric
        elif namespace == "ExpenseBot":
            assert dimensions == {"service": "expensebot"}, metric
        else:
            pytest.fail(f"{namespace} {metric}: a namespace the dashboard should not need")


def test_the_dashboard_shows_every_queue_and_dead_letter_queue(template, dashboard):
    by_metric: dict[str, set[str]] = {}
    for namespace, metric, dimensions, _ in _metric_rows(dashboard):
        if namespace == "AWS/SQS":
            by_metric.setdefault(metric, set()).add(_queue_of(template, dimensions["QueueName"]))
    work, dead_letter = _work_queues(template), _dead_letter_queues(template)
    assert work <= by_metric["ApproximateNumberOfMessagesVisible"]
    assert work <= by_metric["ApproximateAgeOfOldestMessage"]
    assert dead_letter <= by_metric["ApproximateNumberOfMessagesVisible"]


def test_the_dashboard_shows_p50_and_p99_duration_errors_and_throttles_of_every_function(template, dashboard):
    seen: set[tuple[str, str, str]] = set()
    for namespace, metric, dimensions, options in _metric_rows(dashboard):
        if namespace == "AWS/Lambda":
            seen.add((_function_of(template, dimensions["FunctionName"]), metric, options.get("stat", "")))
    for function_id in template.functions:
        assert {(function_id, "Duration", "p50"), (function_id, "Duration", "p99")} <= seen, function_id
        assert {m for f, m, _ in seen if f == function_id} >= {"Errors", "Throttles"}, function_id


def test_the_dashboard_shows_the_apps_own_metrics_and_only_ones_the_code_emits(dashboard):
    shown = {metric for namespace, metric, _, _ in _metric_rows(dashboard) if namespace == "ExpenseBot"}
    assert shown >= SEED_APP_METRICS
    assert shown <= _metric_names_the_code_emits()


def test_the_dashboard_shows_schedule_delivery_failures(dashboard):
    shown = {metric for namespace, metric, _, _ in _metric_rows(dashboard) if namespace == "AWS/Scheduler"}
    assert {"TargetErrorCount", "InvocationDroppedCount"} <= shown


def test_the_memory_widget_reads_the_log_group_of_every_function(template, dashboard):
    (memory,) = [w for w in dashboard["widgets"] if w["type"] == "log"]
    query = memory["properties"]["query"]
    sources = re.findall(r"SOURCE '([^']+)'", query)
    log_groups = {_of_type(template, source, "AWS::Logs::LogGroup") for source in sources}
    # Each function logs to the group its LoggingConfig names, not to Lambda's default /aws/lambda/<name>.
    logged_to = {spec.properties["LoggingConfig"]["LogGroup"]["Ref"] for spec in template.functions.values()}
    assert log_groups == logged_to
    assert len(log_groups) == len(template.functions)
    assert "@maxMemoryUsed" in query and '@type = "REPORT"' in query


def test_the_alarm_widget_lists_every_alarm(template, dashboard):
    (widget,) = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
    listed = {_of_type(template, arn, "AWS::CloudWatch::Alarm") for arn in widget["properties"]["alarms"]}
    assert listed == set(template.of_type("AWS::CloudWatch::Alarm"))


def test_the_outputs_give_the_dashboard_url(template):
    url = _resolver(template).resolve(template.raw["Outputs"]["DashboardUrl"]["Value"])
    assert url.startswith("https://us-east-1.console.aws.amazon.com/cloudwatch/")
    assert url.endswith("#dashboards/dashboard/ref:OperationsDashboard")


# ---------------------------------------------------------------- the alarms


@pytest.fixture(scope="module")
def alarms(template: Template) -> dict[str, dict[str, Any]]:
    resolver = _resolver(template, OldestMessageAlarmSeconds=1800)
    return {
        logical_id: resolver.resolve(resource["Properties"])
        for logical_id, resource in template.of_type("AWS::CloudWatch::Alarm").items()
    }


def _watched(template: Template, alarms: dict[str, dict[str, Any]], metric: str) -> dict[str, set[str]]:
    """Alarm id → the queues or functions whose `metric` it watches."""
    found: dict[str, set[str]] = {}
    for alarm_id, props in alarms.items():
        for query in props["Metrics"]:
            stat = query.get("MetricStat")
            if not stat or stat["Metric"]["MetricName"] != metric:
                continue
            (dimension,) = stat["Metric"]["Dimensions"]
            if dimension["Name"] == "QueueName":
                found.setdefault(alarm_id, set()).add(_queue_of(template, dimension["Value"]))
            elif dimension["Name"] == "FunctionName":
                found.setdefault(alarm_id, set()).add(_function_of(template, dimension["Value"]))
    return found


def _all_watched(template: Template, alarms: dict[str, dict[str, Any]], metric: str) -> set[str]:
    return set().union(*_watched(template, alarms, metric).values())


def test_every_alarm_notifies_the_alarm_topic(template, alarms):
    assert template.of_type("AWS::SNS::Topic").keys() == {"AlarmTopic"}
    assert alarms
    for alarm_id, props in alarms.items():
        assert props["AlarmActions"] == ["ref:AlarmTopic"], alarm_id


def test_the_email_subscription_exists_only_when_an_address_is_given(template):
    (subscription,) = template.of_type("AWS::SNS::Subscription").values()
    assert subscription["Properties"]["TopicArn"] == {"Ref": "AlarmTopic"}
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    created_if = {"Fn::If": [subscription["Condition"], True, False]}
    assert _resolver(template).resolve(created_if) is False
    assert _resolver(template, AlarmEmail="ops@example.com").resolve(created_if) is True


def test_every_dead_letter_queue_alarms_as_soon_as_it_holds_a_message(template, alarms):
    watched = _watched(template, alarms, "ApproximateNumberOfMessagesVisible")
    assert _dead_letter_queues(template) <= set().union(*watched.values())
    for alarm_id in watched:
        assert alarms[alarm_id]["Threshold"] == 0
        assert alarms[alarm_id]["ComparisonOperator"] == "GreaterThanThreshold"


def test_every_work_queue_alarms_when_its_oldest_message_is_older_than_the_parameter(template, alarms):
    watched = _watched(template, alarms, "ApproximateAgeOfOldestMessage")
    assert _work_queues(template) <= set().union(*watched.values())
    for alarm_id in watched:
        assert alarms[alarm_id]["Threshold"] == 1800


def test_every_job_and_worker_function_has_an_error_alarm(template, alarms):
    watched = _all_watched(template, alarms, "Errors")
    assert _scheduled_functions(template) <= watched
    assert _worker_functions(template) <= watched


def test_every_function_has_a_throttle_alarm(template, alarms):
    assert _all_watched(template, alarms, "Throttles") == set(template.functions)


def test_schedule_delivery_failures_alarm_on_the_group_the_schedules_are_in(template, alarms):
    watched = {
        (stat["Metric"]["MetricName"], stat["Metric"]["Dimensions"][0]["Value"])
        for props in alarms.values()
        for query in props["Metrics"]
        if (stat := query.get("MetricStat")) and stat["Metric"]["Namespace"] == "AWS/Scheduler"
    }
    for group in _schedule_groups(template):
        assert {("TargetErrorCount", group), ("InvocationDroppedCount", group)} <= watched


def test_every_math_alarm_combines_all_its_metrics_within_cloudwatch_limits(alarms):
    for alarm_id, props in alarms.items():
        queries = props["Metrics"]
        metric_ids = {q["Id"] for q in queries if "MetricStat" in q}
        (expression,) = [q for q in queries if q.get("ReturnData")]
        assert len(metric_ids) <= CLOUDWATCH_MAX_METRICS_PER_MATH_ALARM, alarm_id
        assert set(re.findall(r"\bm\d+\b", expression["Expression"])) == metric_ids, alarm_id
        assert props["TreatMissingData"] == "notBreaching", alarm_id


# ---------------------------------------------------------------- samconfig.toml


def test_samconfig_deploys_this_template_with_the_capabilities_it_needs(template):
    config = tomllib.loads((PROJECT_ROOT / "samconfig.toml").read_text(encoding="utf-8"))["default"]
    deploy = config["deploy"]["parameters"]
    assert config["global"]["parameters"]["stack_name"] == "expensebot-dev"
    # AUTO_EXPAND for the SAM transform, IAM for the functions' roles.
    assert set(deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
    assert deploy["confirm_changeset"] is True and deploy["resolve_s3"] is True
    assert "region" not in deploy
    overrides = dict(re.findall(r'(\w+)="([^"]*)"', deploy["parameter_overrides"]))
    assert overrides == {"Stage": "dev"}
    assert set(overrides) <= set(template.raw["Parameters"])
