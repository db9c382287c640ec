"""Monitoring proven to match the code. A month is simulated as a user runs it (`expensebot simulate --demo
--faults … --metrics …`) with failures played in: Telegram answering 5xx, then 429, a user who blocked the bot,
a queue out of reach while a job enqueues, a message no worker can read. Then:
- every metric (name and dimension set) that a widget of template.yaml's OperationsDashboard or an alarm
  watches in the app's own namespace was emitted by the functions at least once (AWS/* metrics are AWS's own
  and listed apart); the table is printed (`pytest -s`);
- `ops dashboard --from-emf` draws the month, and a real browser (headless Chromium) loads every picture;
- drawn from CloudWatch instead (moto's GetMetricData, after put_metric_data of the same values), the series
  are the same."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from expensebot_tools.local.docker import can_set_up
from expensebot_tools.project.dashboard import is_aws_namespace, watched_metrics
from expensebot_tools.project.emf import EmfPoint, MetricKey, read_emf_file
from expensebot_tools.project.template import PROJECT_ROOT, Template

EXPENSEBOT = str(Path(sys.executable).with_name("expensebot"))
BLOCKED_CHAT = 1003  # the demo's Вера
FAULTS = [
    # The Bot API answers 5xx for four minutes around the 12:00 recurring notice of the 5th: sends fail and retry.
    {"at": "2026-11-05T11:59", "telegram_errors": 1.0},
    {"at": "2026-11-05T12:03", "telegram_errors": 0},
    {"at": "2026-11-08T00:00", "block_chat": BLOCKED_CHAT},
    {"at": "2026-11-12T08:00", "poison_message": "DefaultQueue"},
    # The recurring-payments job of the 15th cannot enqueue: it fails three times, Lambda's tries.
    {"at": "2026-11-15T11:59", "queue_unavailable": "RecurringQueue"},
    {"at": "2026-11-15T12:10", "queue_available": "RecurringQueue"},
    # Telegram's flood control hits the month-end reports: the bot pauses and holds the others back.
    {"at": "2026-11-30T19:59", "too_many_requests": 1, "retry_after": 30},
]


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("month")
    faults, metrics, outbox = folder / "faults.jsonl", folder / "metrics.jsonl", folder / "outbox.jsonl"
    faults.write_text("".join(json.dumps(f) + "\n" for f in FAULTS), encoding="utf-8")
    env = {key: value for key, value in os.environ.items()
           if key not in {"DATABASE_URL", "APP_TIMEZONE", "ADMIN_CHAT_IDS"}}
    run = subprocess.run([EXPENSEBOT, "simulate", "--demo", "--start", "2026-11-01T00:00", "--end",
                          "2026-12-01T00:00", "--faults", str(faults), "--metrics", str(metrics),
                          "--outbox", str(outbox)], capture_output=True, text=True, timeout=600, env=env)
    # 0 today; 1 once simulate says by its exit code that it reported failures (issue 14, the CLI contract).
    assert run.returncode in (0, 1), run.stderr[-3000:]
    calls = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
    return {"folder": folder, "metrics": metrics, "points": read_emf_file(metrics), "calls": calls,
            "stdout": run.stdout}


def emitted_counts(points: list[EmfPoint]) -> Counter[MetricKey]:
    counts: Counter[MetricKey] = Counter()
    for point in points:
        counts[point.key] += len(point.values)
    return counts


@pytest.mark.slow
def test_every_metric_a_widget_or_an_alarm_watches_was_emitted_in_a_month_with_failures(month):
    # The faults happened: Telegram answered 5xx, 429 and 403 (each is what a metric counts).
    statuses = Counter(call["status"] for call in month["calls"])
    assert statuses[500] + statuses[502] >= 1 and statuses[429] == 1 and statuses[403] >= 1, statuses

    template = Template()
    counts = emitted_counts(month["points"])
    watched = watched_metrics(template)
    ours = [w for w in watched if not is_aws_namespace(w.key.namespace)]
    theirs = [w for w in watched if is_aws_namespace(w.key.namespace)]
    rows = [(w.key.namespace, w.key.name, w.key.dimensions_text(), "; ".join(w.watched_by), str(counts[w.key]))
            for w in ours]
    rows += [(w.key.namespace, w.key.name, w.key.dimensions_text(), "; ".join(w.watched_by), "emitted by AWS")
             for w in theirs]
    unwatched = sorted({(k.name, k.dimensions_text()) for k in counts} - {(w.key.name, w.key.dimensions_text())
                                                                           for w in watched})
    print(_markdown_table(("namespace", "metric", "dimensions", "widget / alarm", "times emitted"), rows))
    print("\nemitted, on no widget or alarm: " + ", ".join(f"{name} [{dims}]" for name, dims in unwatched))

    assert ours, "the dashboard watches metrics of the app's own namespace"
    never = [f"{w.key.name} [{w.key.dimensions_text()}] ({'; '.join(w.watched_by)})" for w in ours if not counts[w.key]]
    assert never == [], "watched but never emitted: " + ", ".join(never)
    # Every custom metric lives in the namespace the functions print to.
    assert {w.key.namespace for w in ours} == {"ExpenseBot"}


def _markdown_table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n" + "\n".join(lines)


def _dashboard(*args: str) -> dict[str, Any]:
    run = subprocess.run([EXPENSEBOT, "ops", "dashboard", "--json", *args], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _totals(drawn: dict[str, Any]) -> dict[tuple[str, str], float]:
    return {(w["title"], s["label"]): s["total"] for w in drawn["widgets"] for s in w["series"]}


@pytest.mark.slow
def test_the_dashboard_of_the_month_opens_in_a_browser_with_every_picture_loaded(month, tmp_path):
    out = tmp_path / "dashboard"
    drawn = _dashboard("--from-emf", str(month["metrics"]), "--out", str(out))

    metric_widgets = [w for w in drawn["widgets"] if w["type"] == "metric"]
    assert all(w["image"] and Path(w["image"]).stat().st_size > 0 for w in metric_widgets)
    assert {w["type"] for w in drawn["widgets"]} == {"text", "alarm", "metric", "log"}
    # What the pictures show is what the functions emitted: the month's sends, and each failure once counted.
    totals = _totals(drawn)
    counts = emitted_counts(month["points"])
    service = (("service", "expensebot"),)
    for name in ("MessagesSent", "RetriedAfter429", "BlockedUsers", "FailedSends", "HeldBack"):
        expected = sum(p for key, p in counts.items() if key.name == name and key.dimensions == service)
        assert totals[("Telegram sends (ExpenseBot)", name)] == expected > 0, name
    assert totals[("Jobs and tasks (ExpenseBot)", "JobFailures")] == 3  # Lambda's three tries of the 15th's job

    chromium = _chromium()
    index = Path(drawn["index"])
    dom = subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", index.as_uri()], capture_output=True, text=True, timeout=120)
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stderr[-2000:]
    assert 'data-img-status="ALL_LOADED"' in body.group(0), body.group(0)
    assert f'data-img-total="{len(metric_widgets)}"' in body.group(0)

    screenshot = tmp_path / "dashboard.png"
    subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                    f"--screenshot={screenshot}", "--window-size=1400,2600", index.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    kept = PROJECT_ROOT / ".bench" / "dashboard.png"  # git-ignored: where a note can point to it
    kept.parent.mkdir(exist_ok=True)
    shutil.copyfile(screenshot, kept)
    print(f"\nscreenshot: {kept}")


def _chromium() -> str:
    """Debian's chromium, installed as root with apt-get when absent (as `make lambda-test` installs Docker)."""
    found = shutil.which("chromium")
    if found:
        return found
    if not can_set_up():
        pytest.skip("no chromium here, and installing it needs root with apt-get (apt-get install chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends",
                                                   "chromium"]):
        subprocess.run(command, check=True, capture_output=True, timeout=900, env=env)
    found = shutil.which("chromium")
    assert found, "apt-get installed chromium, yet no chromium command"
    return found


@pytest.mark.slow
def test_drawn_from_cloudwatch_get_metric_data_the_series_are_the_emitted_ones(month, tmp_path, aws):
    import boto3

    from expensebot_tools.operations.dashboard import CloudWatchSource, EmfSource, build_dashboard

    cloudwatch = boto3.client("cloudwatch")
    ours = [p for p in month["points"] if not is_aws_namespace(p.key.namespace)]
    data = [{"MetricName": p.key.name, "Dimensions": [{"Name": n, "Value": v} for n, v in p.key.dimensions],
             "Timestamp": datetime.fromtimestamp(p.timestamp_ms / 1000, UTC), "Values": list(p.values),
             "Counts": [1.0] * len(p.values), "Unit": "Count"} for p in ours]
    for first in range(0, len(data), 500):
        cloudwatch.put_metric_data(Namespace="ExpenseBot", MetricData=data[first:first + 500])
    start, end = datetime(2026, 10, 31, 21, tzinfo=UTC), datetime(2026, 11, 30, 21, tzinfo=UTC)

    _, from_cloudwatch = build_dashboard(out=tmp_path / "cw", source=CloudWatchSource(cloudwatch), start=start,
                                         end=end, deployment=None)
    _, from_emf = build_dashboard(out=tmp_path / "emf", source=EmfSource(month["metrics"], month["points"]),
                                  start=start, end=end, deployment=None)

    def drawn_series(drawn: list[Any]) -> dict[tuple[str, str], list[tuple[datetime, float]]]:
        return {(d.widget.title, s.query.label): list(zip(s.times, s.values, strict=True))
                for d in drawn for s in d.series if not is_aws_namespace(s.query.key.namespace)}

    cw, emf = drawn_series(from_cloudwatch), drawn_series(from_emf)
    assert cw[("Telegram sends (ExpenseBot)", "MessagesSent")], "GetMetricData answered no MessagesSent"
    assert all(cw[key] for key in cw), [key for key, values in cw.items() if not values]
    assert cw == emf
    assert all((tmp_path / "cw" / d.image).stat().st_size > 0 for d in from_cloudwatch if d.image)


def test_a_bad_faults_line_or_emf_file_is_one_line_and_exit_2(tmp_path):
    faults = tmp_path / "faults.jsonl"
    faults.write_text('{"at": "2026-11-05T11:59", "telegram_errors": "lots"}\n', encoding="utf-8")
    run = subprocess.run([EXPENSEBOT, "simulate", "--start", "2026-11-01T00:00", "--end", "2026-11-02T00:00",
                          "--faults", str(faults)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "line 1: telegram_errors" in run.stderr

    not_emf = tmp_path / "outbox.jsonl"
    not_emf.write_text('{"method": "sendMessage"}\n', encoding="utf-8")
    for path, says in ((tmp_path / "missing.jsonl", "no such file"), (not_emf, "no EMF lines")):
        run = subprocess.run([EXPENSEBOT, "ops", "dashboard", "--from-emf", str(path), "--out", str(tmp_path / "d")],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and run.stderr.count("\n") == 1 and says in run.stderr, run.stderr
