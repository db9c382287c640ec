"""`expensebot ops schedules [disable|enable NAME]`: the EventBridge Scheduler schedules beside the run
ledger (django-celery-beat's PeriodicTask list, with `enabled` and `last_run_at`).

- The list: each schedule whose name starts with the prefix (`expensebot-<Stage>-`, or every schedule
  with `--prefix ''`), its expression, time zone and state, its next run times computed in the
  schedule's own time zone (so daylight saving moves them as Scheduler moves them; a wall-clock time
  that does not exist on a spring-forward day is skipped), and from the ledger its job's last slot, run
  count and the last run's status.
- disable/enable: UpdateSchedule replaces every field it is not given, so the whole schedule is read
  with GetSchedule, its State changed, and every field written back. The next deploy sets State back
  to the template's SchedulesState parameter.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta
from typing import Any

from expensebot_tools.project.schedules import ScheduleExpressionError, fire_times

# Fields UpdateSchedule takes, copied from GetSchedule's answer (anything missing would be reset).
UPDATABLE_FIELDS = (
    "ActionAfterCompletion", "Description", "EndDate", "FlexibleTimeWindow", "GroupName", "KmsKeyArn", "Name",
    "ScheduleExpression", "ScheduleExpressionTimezone", "StartDate", "State", "Target",
)


def next_runs(expression: str, zone: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` times of a `cron(...)` expression after `after`, in the schedule's zone, by the
    same engine the simulation fires schedules with; [] for rate and at expressions (a rate counts from
    the schedule's creation, which Scheduler does not report)."""
    if not expression.strip().startswith("cron("):
        return []
    window = timedelta(days=2)
    found: list[datetime] = []
    while len(found) < count and window <= timedelta(days=5 * 366):
        found = [at for at in fire_times(expression, zone, after, after + window) if at > after][:count]
        window *= 4
    return found


_LEDGER = """
SELECT job, COUNT(*) AS runs, MAX(slot) AS last_slot,
       (ARRAY_AGG(status ORDER BY slot DESC))[1] AS last_status
  FROM job_runs WHERE job = ANY(%(jobs)s) GROUP BY job
"""


def _job_of(schedule: dict[str, Any]) -> str | None:
    try:
        return json.loads(schedule.get("Target", {}).get("Input", "{}")).get("job")
    except ValueError:
        return None


def schedule_rows(runtime: Any, scheduler: Any, *, prefix: str, count: int) -> list[dict[str, Any]]:
    names: list[tuple[str, str]] = []
    kwargs: dict[str, Any] = {"NamePrefix": prefix} if prefix else {}
    while True:
        page = scheduler.list_schedules(**kwargs)
        names += [(s["Name"], s.get("GroupName", "default")) for s in page.get("Schedules", [])
                  if s["Name"].startswith(prefix)]
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    schedules = [scheduler.get_schedule(Name=name, GroupName=group) for name, group in sorted(names)]
    jobs = [job for job in (_job_of(s) for s in schedules) if job]
    ledger = {row["job"]: row for row in runtime.db.fetch_all(_LEDGER, {"jobs": jobs})} if jobs else {}
    now = runtime.clock.now()
    rows = []
    for schedule in schedules:
        zone = schedule.get("ScheduleExpressionTimezone") or "UTC"
        job = _job_of(schedule)
        runs = ledger.get(job or "", {})
        try:
            upcoming = [at.isoformat() for at in next_runs(schedule["ScheduleExpression"], zone, now, count)]
        except ScheduleExpressionError:
            upcoming = []
        rows.append({
            "name": schedule["Name"], "group": schedule.get("GroupName", "default"), "job": job,
            "expression": schedule["ScheduleExpression"], "timezone": zone, "state": schedule.get("State"),
            "next_runs": upcoming if schedule.get("State") == "ENABLED" else [],
            "last_slot": runs.get("last_slot"), "runs": runs.get("runs", 0), "last_status": runs.get("last_status"),
        })
    return rows


def set_state(scheduler: Any, name: str, group: str, state: str) -> dict[str, Any]:
    """Read the whole schedule, change its State, write every field back; returns what was written."""
    current = scheduler.get_schedule(Name=name, GroupName=group)
    update = {key: current[key] for key in UPDATABLE_FIELDS if current.get(key) is not None}
    update["State"] = state
    scheduler.update_schedule(**update)
    return update


def cmd_schedules(args: argparse.Namespace) -> int:
    import boto3

    from expensebot_tools.console import CliError, opened_runtime, print_json, print_table

    scheduler = boto3.client("scheduler")
    if args.action in ("disable", "enable"):
        if not args.name:
            raise CliError(f"ops schedules {args.action} needs a schedule NAME (see `expensebot ops schedules`)")
        try:
            set_state(scheduler, args.name, args.group, "DISABLED" if args.action == "disable" else "ENABLED")
        except scheduler.exceptions.ResourceNotFoundException as exc:
            raise CliError(f"no schedule {args.name!r} in group {args.group!r}") from exc
        print(f"{args.name}: {args.action}d (the next deploy sets it back to the SchedulesState parameter)")
        return 0
    with opened_runtime() as runtime:
        rows = schedule_rows(runtime, scheduler, prefix=args.prefix, count=args.count)
        tz = runtime.settings.tz
    if args.json:
        print_json(rows)
        return 0
    print_table(
        f"Schedules ({args.prefix or 'all'}*; last slot in {tz.key})",
        ["name", "expression", "time zone", "state", "next runs", "last slot", "runs", "last status"],
        [[r["name"], r["expression"], r["timezone"], r["state"], "\n".join(r["next_runs"]),
          r["last_slot"].astimezone(tz).strftime("%Y-%m-%d %H:%M") if r["last_slot"] else "never", r["runs"],
          r["last_status"] or ""] for r in rows],
    )
    return 0


def add_parser(sub: Any) -> None:
    schedules = sub.add_parser("schedules", help="the EventBridge schedules, next runs and the ledger; "
                                                 "`schedules disable|enable NAME`")
    schedules.add_argument("action", nargs="?", choices=("list", "disable", "enable"), default="list",
                           help="list (default), or disable|enable the schedule NAME")
    schedules.add_argument("name", nargs="?", help="the schedule to disable or enable")
    schedules.add_argument("--prefix", "--stack-prefix", dest="prefix", default="expensebot-",
                           help="schedule name prefix, e.g. expensebot-prod- (default expensebot-; '' for all)")
    schedules.add_argument("--group", default="default", help="schedule group (default: default)")
    schedules.add_argument("--count", type=int, default=3, help="next run times to show (default 3)")
    schedules.add_argument("--json", action="store_true", help="the schedules as JSON")
    schedules.set_defaults(func=cmd_schedules)
