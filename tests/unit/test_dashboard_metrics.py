"""What the dashboard reads: EMF lines as CloudWatch reads them (each dimension set a metric, values per
period under CloudWatch's statistics), the widgets' metric arrays with the console's shorthand, the template's
references resolved against a deployment, and the local capture of the lines the functions print."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from expensebot_tools.console import CliError
from expensebot_tools.local.metrics import append_emf_lines, captured_metrics
from expensebot_tools.operations.dashboard import effective_period, parse_since
from expensebot_tools.project.dashboard import _metric_queries, dashboard_widgets, deployment_resolver
from expensebot_tools.project.emf import MetricKey, parse_emf, read_emf_file, series, statistic

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def emf(ms: int, dimension_sets: list[list[str]], **values: object) -> dict[str, object]:
    names = [k for k, v in values.items() if isinstance(v, list | int | float) and not isinstance(v, bool)]
    return {"_aws": {"Timestamp": ms, "CloudWatchMetrics": [{
        "Namespace": "ExpenseBot", "Dimensions": dimension_sets,
        "Metrics": [{"Name": n, "Unit": "Count"} for n in names]}]}, **values}


def test_each_dimension_set_of_a_record_is_a_metric_of_its_own_with_every_listed_value():
    record = emf(1000, [["service"], ["kind", "service"]], service="expensebot", kind="budget_alert",
                 MessagesSent=[1.0, 1.0])
    points = parse_emf(record)
    assert {p.key for p in points} == {
        MetricKey("ExpenseBot", "MessagesSent", (("service", "expensebot"),)),
        MetricKey("ExpenseBot", "MessagesSent", (("kind", "budget_alert"), ("service", "expensebot"))),
    }
    assert all(p.values == (1.0, 1.0) and p.timestamp_ms == 1000 for p in points)
    with pytest.raises(ValueError, match="without a value"):
        parse_emf(emf(1000, [["queue"]], Depth=1))


def test_statistics_per_period_are_cloudwatchs_and_periods_align_to_the_epoch():
    values = [float(v) for v in range(1, 101)]
    assert (statistic(values, "Sum"), statistic(values, "Average"), statistic(values, "SampleCount")) == (
        5050.0, 50.5, 100.0)
    assert (statistic(values, "p50"), statistic(values, "p99"), statistic(values, "Maximum")) == (50.0, 99.0, 100.0)
    with pytest.raises(ValueError, match="statistic"):
        statistic(values, "Median")

    key = MetricKey("ExpenseBot", "FailedSends", (("service", "expensebot"),))
    ms = int(T0.timestamp() * 1000)
    points = [p for r in (emf(ms + 10_000, [["service"]], service="expensebot", FailedSends=[1.0, 1.0]),
                          emf(ms + 290_000, [["service"]], service="expensebot", FailedSends=2),
                          emf(ms + 301_000, [["service"]], service="expensebot", FailedSends=5))
              for p in parse_emf(r)]
    times, sums = series(points, key, "Sum", 300, T0, T0 + timedelta(hours=1))
    assert (times, sums) == ([T0, T0 + timedelta(seconds=300)], [4.0, 5.0])
    assert series(points, key, "Sum", 300, T0 + timedelta(hours=1), T0 + timedelta(hours=2)) == ([], [])


def test_a_widgets_metrics_use_its_stat_and_period_unless_the_entry_says_otherwise():
    queries, notes = _metric_queries({"stat": "Sum", "period": 300, "metrics": [
        ["AWS/Lambda", "Duration", "FunctionName", "f1", {"stat": "p99", "label": "f1 p99"}],
        [".", ".", ".", "f2"],  # the console's shorthand: the previous entry's items
        ["AWS/Lambda", "Errors", "FunctionName", "f3", {"visible": False}],
        [{"expression": "SUM(METRICS())", "label": "all", "id": "e1"}],
    ]})
    assert [(q.key.name, q.key.dimensions, q.stat, q.period, q.label) for q in queries] == [
        ("Duration", (("FunctionName", "f1"),), "p99", 300, "f1 p99"),
        ("Duration", (("FunctionName", "f2"),), "Sum", 300, "Duration FunctionName=f2"),
    ]
    assert len(notes) == 1 and "SUM(METRICS())" in notes[0]


def test_the_template_widgets_name_the_deployed_queues_and_functions(template):
    resolver = deployment_resolver(template, {
        "DefaultQueue": "https://sqs.eu-west-1.amazonaws.com/111122223333/prod-DefaultQueue-AbC",
        "WebhookFunction": "prod-WebhookFunction-XyZ",
    }, pseudo={"AWS::Region": "eu-west-1"})
    widgets = {w.title: w for w in dashboard_widgets(template, resolver)}
    waiting = widgets["Messages waiting per queue"]
    assert waiting.queries[0].key.dimensions == (("QueueName", "prod-DefaultQueue-AbC"),)
    assert waiting.queries[1].key.dimensions == (("QueueName", "ReportsQueue"),)  # not deployed: its logical id
    webhook = [q for q in widgets["Worker and webhook duration p50 / p99 (ms)"].queries if "Webhook" in q.label]
    assert {q.key.dimensions for q in webhook} == {(("FunctionName", "prod-WebhookFunction-XyZ"),)}
    assert {q.stat for q in webhook} == {"p50", "p99"}
    assert waiting.properties["region"] == "eu-west-1"


def test_since_and_the_period_widened_for_long_windows():
    assert parse_since("30d") == timedelta(days=30) and parse_since("90m") == timedelta(minutes=90)
    with pytest.raises(CliError, match="--since"):
        parse_since("yesterday")
    assert effective_period(300, T0, T0 + timedelta(hours=3)) == 300
    assert effective_period(300, T0, T0 + timedelta(days=30)) == 3600  # 720 points, not 8640


def test_emf_lines_printed_on_stdout_go_to_the_file_at_the_clocks_time_and_the_rest_passes(tmp_path, capsys):
    path = tmp_path / "metrics.jsonl"
    virtual = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
    with captured_metrics(path, clock=lambda: virtual) as capture:
        print(json.dumps(emf(1, [["service"]], service="expensebot", MessagesSent=[1.0])))
        print('{"level":"INFO","message":"a log line"}')
        print("plain text")
    assert capture.lines == 1
    assert capsys.readouterr().out == '{"level":"INFO","message":"a log line"}\nplain text\n'
    (point,) = read_emf_file(path)
    assert point.timestamp_ms == int(virtual.timestamp() * 1000) and point.key.name == "MessagesSent"
    # local up's helper appends; log lines given to it are left out.
    written = append_emf_lines(path, [json.dumps(emf(2, [["service"]], service="expensebot", ParkedTasks=1)),
                                      '{"level":"INFO"}'])
    assert written == 1 and [p.key.name for p in read_emf_file(path)] == ["MessagesSent", "ParkedTasks"]


def test_faults_lines_are_read_in_time_order_and_a_bad_one_is_named(tmp_path, template):
    from zoneinfo import ZoneInfo

    from expensebot_tools.local.simulate import FAULT, SimulationInputError, read_faults

    moscow = ZoneInfo("Europe/Moscow")
    start, end = datetime(2026, 11, 1, tzinfo=moscow), datetime(2026, 12, 1, tzinfo=moscow)
    path = tmp_path / "faults.jsonl"
    path.write_text('{"at": "2026-11-05T11:59", "telegram_errors": 1.0}\n\n'
                    '{"at": "2026-11-30T19:59", "too_many_requests": 1, "retry_after": 30}\n', encoding="utf-8")
    faults = read_faults(path, start, end, moscow, set(template.queues))
    assert [(f.at.isoformat(), f.kind) for f in faults] == [("2026-11-05T11:59:00+03:00", FAULT),
                                                             ("2026-11-30T19:59:00+03:00", FAULT)]
    for line, message in (
        ('{"at": "2026-11-05T11:59", "telegram_errors": 2}', "line 1: telegram_errors: the fraction"),
        ('{"at": "2026-11-05T11:59", "queue_unavailable": "NoSuchQueue"}', "is not a queue of template.yaml"),
        ('{"at": "2026-11-05T11:59", "block_chat": 1, "poison_message": "DefaultQueue"}', "exactly one of"),
        ('{"at": "2027-01-01T00:00", "block_chat": 1}', "outside the window"),
        ('{"block_chat": 1}', 'with "at"'),
    ):
        path.write_text(line + "\n", encoding="utf-8")
        with pytest.raises(SimulationInputError, match=message):
            read_faults(path, start, end, moscow, set(template.queues))
