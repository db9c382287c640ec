"""`expensebot ops logs FUNCTION`: a function's log lines from CloudWatch Logs (what `sam logs`, `zappa tail`
and `chalice logs` give), the Powertools JSON lines shown readably.

FUNCTION is a template logical id (`NotificationsWorkerFunction`), a job (`send_monthly_reports`) or a queue
(`notifications`: its worker). Its log group is the LogGroup resource template.yaml names in the function's
LoggingConfig, found where the deployment put it (operations/deployment.py). FilterLogEvents reads it,
interleaved across streams in time order.
`--filter TEXT` is a CloudWatch quoted-phrase pattern; `--task NAME` a JSON pattern on the `task` key the worker
appends (or the `job` key of a job run). Both are applied again to what comes back: moto (and a log line that
is not JSON) does not understand every pattern, and a filter must never show what it was asked to hide.
`--follow` polls every two seconds from the newest event seen, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from expensebot_tools.console import CliError, render_log_record
from expensebot_tools.operations.deployment import Deployment
from expensebot_tools.project.template import Template

FOLLOW_POLL_SECONDS = 2.0
_DURATION_RE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime) -> datetime:
    """`10m`, `2h`, `1d`, `1h30m` back from now, or an ISO time (UTC when it names no zone)."""
    compact = text.replace(" ", "")
    if re.fullmatch(r"(\d+[smhdw])+", compact):
        delta = timedelta()
        for amount, unit in _DURATION_RE.findall(compact):
            delta += timedelta(**{_UNITS[unit]: int(amount)})
        return now - delta
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--since/--until {text!r}: give a duration like 10m, 2h, 1d or an ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def function_logical_id(name: str, template: Template) -> str:
    """A logical id, a job name or a queue name → the function's logical id."""
    functions = template.functions
    by_lower = {logical_id.lower(): logical_id for logical_id in functions}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    if name.lower() + "function" in by_lower:
        return by_lower[name.lower() + "function"]
    for logical_id, spec in functions.items():
        variables = spec.properties.get("Environment", {}).get("Variables", {})
        if name in (variables.get("JOB_NAME"), variables.get("QUEUE_NAME")):
            return logical_id
    choices = ", ".join(sorted(functions))
    raise CliError(f"no function {name!r}: give a logical id ({choices}), a job or a queue name")


def log_group_name(deployment: Deployment, template: Template, function_id: str) -> str:
    """The function's log group: the LogGroup resource its LoggingConfig names, where the deployment put it."""
    reference = template.functions[function_id].properties.get("LoggingConfig", {}).get("LogGroup")
    if not isinstance(reference, dict) or "Ref" not in reference:
        raise CliError(f"{function_id} names no log group of the template in its LoggingConfig")
    return deployment.physical_id(reference["Ref"])


def filter_pattern(text: str | None, task: str | None) -> str | None:
    if task:
        quoted = json.dumps(task)
        return f"{{ ($.task = {quoted}) || ($.job = {quoted}) }}"
    if text:
        return json.dumps(text)
    return None


def parse_message(message: str) -> dict[str, Any] | None:
    try:
        value = json.loads(message)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "message" in value else None


def wanted(message: str, record: dict[str, Any] | None, *, text: str | None, task: str | None) -> bool:
    if text and text not in message:
        return False
    return not task or (record is not None and task in (record.get("task"), record.get("job")))


def fetch_events(client: Any, group: str, *, start: datetime, end: datetime | None, pattern: str | None,
                 after_ids: set[str] | None = None) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"logGroupName": group, "startTime": int(start.timestamp() * 1000), "interleaved": True}
    if end is not None:
        kwargs["endTime"] = int(end.timestamp() * 1000)
    if pattern:
        kwargs["filterPattern"] = pattern
    while True:
        try:
            page = client.filter_log_events(**kwargs)
        except client.exceptions.ResourceNotFoundException:
            raise CliError(f"no log group {group}: has the function run since it was deployed?") from None
        for event in sorted(page.get("events", []), key=lambda e: (e["timestamp"], e.get("eventId", ""))):
            if after_ids is None or event.get("eventId") not in after_ids:
                yield event
        token = page.get("nextToken")
        if not token or token == kwargs.get("nextToken"):
            return
        kwargs["nextToken"] = token


def readable(event: dict[str, Any], record: dict[str, Any] | None) -> str:
    when = datetime.fromtimestamp(event["timestamp"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:23]
    if record is None:
        return f"{when} {event['message'].rstrip()}"
    return render_log_record(record, when=when)


def cmd_logs(args: argparse.Namespace) -> int:
    import boto3

    template = Template()
    function_id = function_logical_id(args.function, template)
    deployment = Deployment.from_environment()
    group = log_group_name(deployment, template, function_id)
    now = datetime.now(UTC)
    start = parse_since(args.since, now)
    end = parse_since(args.until, now) if args.until else None
    client = boto3.client("logs")
    pattern = filter_pattern(args.filter, args.task)
    seen: set[str] = set()
    shown = 0
    while True:
        newest = start
        for event in fetch_events(client, group, start=start, end=end, pattern=pattern, after_ids=seen):
            seen.add(event.get("eventId", ""))
            newest = max(newest, datetime.fromtimestamp(event["timestamp"] / 1000, UTC))
            record = parse_message(event["message"])
            if not wanted(event["message"], record, text=args.filter, task=args.task):
                continue
            if args.json:
                print(json.dumps({"timestamp": event["timestamp"], "stream": event.get("logStreamName"),
                                  "record": record, "message": event["message"] if record is None else None},
                                 ensure_ascii=False), flush=True)
            else:
                print(readable(event, record), flush=True)
            shown += 1
            if args.limit and shown >= args.limit and not args.follow:
                return 0
        if not args.follow:
            return 0
        # Events of the same millisecond may arrive later; the ids seen keep them from showing twice.
        start = newest
        time.sleep(FOLLOW_POLL_SECONDS)


def add_parser(sub: Any) -> None:
    logs = sub.add_parser("logs", help="a function's log lines from CloudWatch Logs, readable (sam logs)")
    logs.add_argument("function", help="logical id (NotificationsWorkerFunction), job or queue name")
    logs.add_argument("--since", default="10m", help="how far back: 10m, 2h, 1d, or an ISO time (default 10m)")
    logs.add_argument("--until", help="up to: a duration back from now or an ISO time (default now)")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until Ctrl-C")
    logs.add_argument("--filter", help="only lines containing this text")
    logs.add_argument("--task", help="only lines of this task (worker) or job (job function)")
    logs.add_argument("--limit", type=int, default=0, help="stop after this many lines (default: all)")
    logs.add_argument("--json", action="store_true", help="one JSON object per line: timestamp, stream, record")
    logs.set_defaults(func=cmd_logs)
