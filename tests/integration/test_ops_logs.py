"""`expensebot ops logs`: a function's log lines from CloudWatch Logs (moto), readable, filtered as asked."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from expensebot_tools.cli import main

GROUP = "/aws/lambda/expensebot-test/NotificationsWorkerFunction"


def powertools_line(message: str, level: str = "INFO", **keys: object) -> str:
    """A line as the library's Powertools logger prints it in Lambda."""
    record = {"level": level, "location": "process:88", "message": message, "timestamp": "2026-12-01 20:00:00,000+0000",
              "service": "expensebot", "cold_start": False, "function_name": "fn", "xray_trace_id": "1-abc", **keys}
    return json.dumps(record)


@pytest.fixture
def log_group(aws: None, tmp_path, monkeypatch: pytest.MonkeyPatch) -> object:
    logs = boto3.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps({"NotificationsWorkerLogGroup": GROUP}))
    monkeypatch.setenv("EXPENSEBOT_RESOURCES_FILE", str(resources))
    monkeypatch.delenv("EXPENSEBOT_STACK_NAME", raising=False)
    now = int(time.time() * 1000)
    for offset, (stream, lines) in enumerate({
        "2026/12/01/[$LATEST]a": [
            "START RequestId: 1 Version: $LATEST",
            powertools_line("sent", task="notifications.send_budget_alert", task_id="t-1", chat_id=1001),
            powertools_line("delivery failed", level="ERROR", task="notifications.send_budget_alert",
                            task_id="t-2", exception="Traceback ...\nTelegramError: Forbidden: bot was blocked"),
        ],
        "2026/12/01/[$LATEST]b": [powertools_line("sent", task="reports.send_monthly_report", task_id="t-3")],
    }.items()):
        logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
        logs.put_log_events(logGroupName=GROUP, logStreamName=stream,
                            logEvents=[{"timestamp": now - 60_000 + offset * 10_000 + i * 1000, "message": line}
                                       for i, line in enumerate(lines)])
    return logs


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["ops", "logs", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_lines_are_readable_not_raw_json(log_group, capsys):
    code, out, _ = run(capsys, "notifications", "--since", "10m")

    assert code == 0
    lines = out.splitlines()
    assert not any(line.lstrip().startswith("{") for line in lines)
    assert any("INFO" in line and "sent" in line and "task=notifications.send_budget_alert" in line for line in lines)
    assert any("ERROR" in line and "delivery failed" in line for line in lines)
    # The exception's last line, indented under its line; Powertools' noise keys are left out.
    assert "    TelegramError: Forbidden: bot was blocked" in lines
    assert "xray_trace_id" not in out and "cold_start" not in out
    assert any("START RequestId: 1" in line for line in lines)


def test_task_and_filter_narrow_the_lines(log_group, capsys):
    _, by_task, _ = run(capsys, "NotificationsWorkerFunction", "--task", "reports.send_monthly_report")
    assert "task_id=t-3" in by_task and "task_id=t-1" not in by_task and "START" not in by_task

    _, by_text, _ = run(capsys, "notifications", "--filter", "delivery failed")
    assert "task_id=t-2" in by_text and "task_id=t-1" not in by_text


def test_json_gives_the_parsed_records(log_group, capsys):
    code, out, _ = run(capsys, "notifications", "--json")

    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    # In time order across the two streams (the second stream's line is ten seconds later).
    assert [row["record"]["task_id"] for row in rows if row["record"]] == ["t-1", "t-2", "t-3"]
    assert [row["message"] for row in rows if not row["record"]] == ["START RequestId: 1 Version: $LATEST"]


def test_since_excludes_older_lines(log_group, capsys):
    _, out, _ = run(capsys, "notifications", "--since", "2026-12-31T00:00:00")
    assert out == ""


def test_an_unknown_function_or_missing_group_is_a_one_line_usage_error(log_group, capsys, monkeypatch, tmp_path):
    code, _, err = run(capsys, "no_such_function")
    assert code == 2
    assert err.startswith("expensebot ops logs: no function 'no_such_function'") and err.count("\n") == 1

    code, _, err = run(capsys, "notifications", "--since", "yesterday")
    assert code == 2 and "give a duration like 10m" in err

    missing = tmp_path / "other.json"
    missing.write_text(json.dumps({"NotificationsWorkerLogGroup": "/aws/lambda/none/NotificationsWorkerFunction"}))
    monkeypatch.setenv("EXPENSEBOT_RESOURCES_FILE", str(missing))
    code, _, err = run(capsys, "notifications")
    assert code == 2 and "no log group /aws/lambda/none/NotificationsWorkerFunction" in err
