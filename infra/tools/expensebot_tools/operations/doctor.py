"""`expensebot ops doctor`: the seed's troubleshooting checklist and frequent-errors table as checks. Each
check passes, or fails saying what to do; the exit code is 1 when any check fails.

Checks: the database is reachable and migrated; every queue has a URL, exists, and has a DLQ that is
empty, and so are the jobs' two DLQs (JobFailureQueue, SchedulerDeadLetterQueue); every registered
task's queue has a URL (the seed's "Received unregistered task" / a task routed
nowhere); the schedules (when Scheduler can be read) are enabled and all in the app's time zone; the bot
token is valid (getMe); the webhook is set with no error in the last day (getWebhookInfo); no run failed,
or is still 'running' with its lease run out (the seed's WorkerLostError), within the window (`--window`,
default 24 h) unless a later attempt of the same slot succeeded; every month-end slot of the monthly reports
has a success (however old: a month's reports are due once).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

WEBHOOK_ERROR_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _safely(name: str, fix: str, probe: Callable[[], list[Check]]) -> list[Check]:
    try:
        return probe()
    except Exception as exc:  # a check that cannot run is a failed check, said in one line
        return [Check(name, False, f"{type(exc).__name__}: {str(exc).strip()[:300]}", fix)]


def database_checks(runtime: Any) -> list[Check]:
    from expensebot.adapters.migrations import pending
    from expensebot_tools.project.template import MIGRATIONS_DIR

    def probe() -> list[Check]:
        waiting = pending(runtime.db, MIGRATIONS_DIR)
        if waiting:
            return [Check("database", False, f"reachable; migrations pending: {', '.join(waiting)}",
                          "run `expensebot migrate` against this database")]
        return [Check("database", True, "reachable, schema current")]

    return _safely("database", "check DATABASE_URL (or the database secret), the network path and the credentials",
                   probe)


# What to do about messages in each kind of DLQ (`{label}` is the DLQ's name for `ops dlq`).
_TASK_DLQ_FIX = ("`expensebot ops dlq show {label}`, fix the cause, then `expensebot ops dlq redrive {label}` "
                 "(or `ops dlq retry {label} ID…` / `ops dlq drop {label} ID…` per message)")
_JOB_DLQ_FIX = {
    "JobFailureQueue": "a job raised on every attempt: `expensebot ops dlq show JobFailureQueue` (job, slot, "
                       "error), fix the cause, then `expensebot ops dlq retry JobFailureQueue ID…` re-runs that "
                       "slot (or `ops dlq drop`)",
    "SchedulerDeadLetterQueue": "Scheduler could not invoke a job function (its role, the function, throttling): "
                                "`expensebot ops dlq show SchedulerDeadLetterQueue`, fix the cause, then "
                                "`expensebot ops dlq retry SchedulerDeadLetterQueue ID…` runs that slot",
}


def queue_checks(runtime: Any) -> list[Check]:
    """Each task queue exists, and each of the seven DLQs (the five task queues', JobFailureQueue and
    SchedulerDeadLetterQueue) is known and empty."""
    from expensebot.config import QUEUE_NAMES
    from expensebot.tasks import registry
    from expensebot_tools.operations.deployment import JOB_DEAD_LETTER_VARIABLES, Deployment, QueueRef
    from expensebot_tools.operations.queues import Operations

    checks: list[Check] = []
    try:
        deployment = Deployment.from_environment()
    except Exception as exc:  # an unreadable resources file or stack: the queue variables still work
        checks.append(Check("deployment", False, f"{type(exc).__name__}: {exc}",
                            "source .expensebot/local.env again (local up), or fix EXPENSEBOT_STACK_NAME"))
        deployment = Deployment()
    ops = Operations(deployment, runtime)
    configured = set()
    for queue in QUEUE_NAMES:
        if not runtime.settings.queue_url(queue):
            checks.append(Check(f"queue {queue}", False, "no URL configured",
                                f"set QUEUE_URL_{queue.upper()} to the {queue} queue's URL (stack outputs)"))
            continue
        configured.add(queue)

        def probe(queue: str = queue) -> list[Check]:
            depth = runtime.queues.depth(queue)
            found = [Check(f"queue {queue}", True,
                           f"present with its DLQ; waiting {depth.waiting}, in flight {depth.in_flight}")]
            if depth.dead_letter:
                found.append(Check(f"DLQ {queue}", False, f"{depth.dead_letter} message(s) failed",
                                   _TASK_DLQ_FIX.format(label=queue)))
            else:
                found.append(Check(f"DLQ {queue}", True, "empty"))
            return found

        checks += _safely(f"queue {queue}", "deploy the stack, or correct the URL; the queue needs its redrive policy",
                          probe)
    for logical_id, variable in JOB_DEAD_LETTER_VARIABLES.items():
        ref = QueueRef(logical_id)
        url = ops.url_or_none(ref)
        if not url:
            checks.append(Check(f"DLQ {logical_id}", False, "no URL configured: its failed jobs go unseen",
                                f"source .expensebot/local.env (local up), set EXPENSEBOT_STACK_NAME, or set "
                                f"{variable} (the stack's {logical_id}Url output)"))
            continue

        def probe_job_dlq(logical_id: str = logical_id, url: str = url) -> list[Check]:
            waiting = ops.count(url)
            if waiting:
                return [Check(f"DLQ {logical_id}", False, f"{waiting} failed job delivery(ies)",
                              _JOB_DLQ_FIX[logical_id])]
            return [Check(f"DLQ {logical_id}", True, "empty")]

        checks += _safely(f"DLQ {logical_id}", "deploy the stack, or correct the URL", probe_job_dlq)
    unrouted = sorted(name for name, task in registry().items() if task.queue not in configured)
    checks.append(
        Check("task routing", False, f"tasks with no queue URL: {', '.join(unrouted)}",
              "set the QUEUE_URL_* of their queues") if unrouted
        else Check("task routing", True, f"all {len(registry())} tasks go to a configured queue")
    )
    return checks


def schedule_checks(runtime: Any, prefix: str) -> list[Check]:
    def probe() -> list[Check]:
        import boto3

        scheduler = boto3.client("scheduler")
        names = [s["Name"] for s in scheduler.list_schedules(NamePrefix=prefix).get("Schedules", [])
                 if s["Name"].startswith(prefix)]
        if not names:
            return [Check("schedules", False, f"no schedule named {prefix}*",
                          "deploy the stack, or pass --prefix expensebot-<Stage>-")]
        checks = []
        app_zone = runtime.settings.app_timezone
        for name in sorted(names):
            schedule = scheduler.get_schedule(Name=name)
            zone = schedule.get("ScheduleExpressionTimezone") or "UTC"
            problems, fixes = [], []
            if schedule.get("State") != "ENABLED":
                problems.append("disabled")
                fixes.append(f"`expensebot ops schedules enable {name}` if that was not meant")
            if zone != app_zone:
                problems.append(f"time zone {zone}, but the functions use APP_TIMEZONE={app_zone}")
                fixes.append("deploy with one TimeZone parameter for schedules and functions")
            checks.append(Check(f"schedule {name}", not problems,
                                "; ".join(problems) or f"enabled, {schedule['ScheduleExpression']} in {zone}",
                                "; ".join(fixes)))
        return checks

    return _safely("schedules", "give the CLI scheduler:ListSchedules/GetSchedule access, or skip with --no-schedules",
                   probe)


def telegram_checks(runtime: Any) -> list[Check]:
    def bot() -> list[Check]:
        me = runtime.telegram.call("getMe")
        return [Check("bot token", True, f"valid: @{me.get('username')}")]

    checks = _safely("bot token", "set TELEGRAM_BOT_TOKEN (or the token secret) to the token @BotFather gave", bot)
    if not checks[0].ok:
        return checks

    def webhook() -> list[Check]:
        info = runtime.telegram.call("getWebhookInfo")
        if not info.get("url"):
            return [Check("webhook", False, "not set: Telegram sends the bot no updates",
                          "`expensebot webhook set --url <the stack's WebhookUrl output>`")]
        error_at = info.get("last_error_date")
        now = runtime.clock.now()
        if error_at and now - datetime.fromtimestamp(error_at, UTC) < WEBHOOK_ERROR_WINDOW:
            return [Check("webhook", False, f"{info['url']}: last error {info.get('last_error_message')!r} at "
                          f"{datetime.fromtimestamp(error_at, UTC).isoformat()}; "
                          f"{info.get('pending_update_count', 0)} update(s) waiting",
                          "read the WebhookFunction's logs; `expensebot webhook info` shows when it recovers")]
        return [Check("webhook", True, f"{info['url']}, no error in the last day")]

    return checks + _safely("webhook", "check the bot token and the network path to Telegram", webhook)


# Every failed or stale run (its lease ran out: the attempt died) of the window. A later attempt of the same
# slot takes over the slot's one row (job_runs_once_per_slot), so a run superseded by a success is no longer
# 'failed' here; a later run of another slot (the next day's skipped month-end, the next half hour's budget
# check) hides nothing.
_UNSETTLED_RUNS = """
SELECT job, slot, status, attempts, started_at, error, {lease_ran_out} AS stale
  FROM job_runs
 WHERE (status = 'failed' OR ({lease_ran_out}))
   AND (slot >= %(since)s OR started_at >= %(since)s)
 ORDER BY slot DESC, job
"""

WINDOW_VARIABLE = "EXPENSEBOT_DOCTOR_WINDOW"
DEFAULT_WINDOW = "24h"


def job_checks(runtime: Any, window: timedelta = timedelta(hours=24)) -> list[Check]:
    from expensebot.scheduling import lease_parameters, lease_ran_out
    from expensebot_tools.operations.ledger import missed_slot_rows

    def probe() -> list[Check]:
        tz = runtime.settings.tz
        params = {**lease_parameters(runtime), "since": runtime.clock.now() - window}
        rows = runtime.db.fetch_all(_UNSETTLED_RUNS.format(lease_ran_out=lease_ran_out()), params)
        checks = []
        for row in rows:
            slot = row["slot"].astimezone(tz).isoformat()
            if row["stale"]:
                checks.append(Check(
                    f"job {row['job']}", False,
                    f"run for slot {slot} still 'running' since {row['started_at'].astimezone(tz)}: its attempt "
                    "stopped renewing its lease (timeout, out of memory, database lost)",
                    f"check the function's logs (`expensebot ops dlq show JobFailureQueue` if it failed); "
                    f"`expensebot ops run {row['job']} --slot {slot}` takes the run over"))
            else:
                checks.append(Check(
                    f"job {row['job']}", False,
                    f"run for slot {slot} failed ({row['attempts']} attempt(s)): {row['error']}",
                    f"`expensebot ops dlq show JobFailureQueue` shows the failed attempts; fix the cause, then "
                    f"`expensebot ops run {row['job']} --slot {slot}`"))
        listed = {(row["job"], row["slot"]) for row in rows}
        # Month-end slots whose reports no run sent, however long ago: a month is reported once, at its end
        # (or by the next day's catch-up), so one failure must stay in view until a run covers the month.
        missed = missed_slot_rows(runtime)
        failures = {(r["job"], r["slot"]): r["error"] for r in missed if r["status"] == "failed"}
        for month in (r for r in missed if r["status"] == "no success"):
            if (month["job"], month["slot"]) in listed:
                continue
            slot = month["slot"].astimezone(tz).isoformat()
            error = failures.get((month["job"], month["slot"]))
            checks.append(Check(
                f"job {month['job']}", False, f"month-end slot {slot} has no success: {month['problem']}"
                + (f"; its run failed: {error}" if error else ""),
                f"`expensebot ops run {month['job']} --slot {slot}` (the next 20:00 run also catches up the "
                "month before it); `expensebot ops dlq show JobFailureQueue` shows why its attempts failed"))
        if not checks:
            checks.append(Check("job runs", True, f"no failed or stale run in the last {_said(window)}, and every "
                                                  "month's reports went out"))
        return checks

    return _safely("job runs", "the job_runs table needs the database (see above)", probe)


def _said(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    return f"{hours:g} h" if hours < 48 else f"{hours / 24:g} days"


def cmd_doctor(args: argparse.Namespace) -> int:
    from expensebot_tools.console import opened_runtime, print_json, print_table
    from expensebot_tools.operations.periods import parse_duration

    with opened_runtime() as runtime:
        checks = database_checks(runtime) + queue_checks(runtime)
        if not args.no_schedules:
            checks += schedule_checks(runtime, args.prefix)
        checks += telegram_checks(runtime) + job_checks(runtime, parse_duration(args.window, "--window"))
    failed = [c for c in checks if not c.ok]
    if args.json:
        print_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        print_table("expensebot doctor", ["check", "result", "detail", "what to do"],
                    [[c.name, "ok" if c.ok else "FAIL", c.detail, c.fix] for c in checks])
        print(f"{len(failed)} problem(s) found" if failed else "no problems found",
              file=sys.stdout)
    return 1 if failed else 0


def add_parser(sub: Any) -> None:
    doctor = sub.add_parser("doctor", help="check the whole deployment; each failure says what to do (exit 1)")
    doctor.add_argument("--prefix", "--stack-prefix", dest="prefix", default="expensebot-",
                        help="schedule name prefix, e.g. expensebot-prod- (default expensebot-)")
    doctor.add_argument("--no-schedules", action="store_true", help="skip the EventBridge Scheduler checks")
    doctor.add_argument("--window", default=os.environ.get(WINDOW_VARIABLE) or DEFAULT_WINDOW,
                        help=f"how far back a failed or stale run is a problem, e.g. 24h, 7d (default "
                             f"{WINDOW_VARIABLE}, else {DEFAULT_WINDOW}); month-end slots count however old")
    doctor.add_argument("--json", action="store_true", help="every check and its outcome as JSON")
    doctor.set_defaults(func=cmd_doctor)
