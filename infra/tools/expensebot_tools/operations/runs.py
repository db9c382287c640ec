"""`expensebot ops run` and `ops send`: run a job for a slot, schedule a one-off run, enqueue one task unit.

- `run JOB`: runs the schedule's latest due slot (the last time its template.yaml expression fired, in the
  schedule's time zone), so two `ops run JOB` in a row are one run: the second finds the slot taken and
  answers `duplicate`, as a second delivery of the same schedule would (Celery beat's `run now` had no
  such guard; here the ledger's once-per-slot key gives it for free).
- `run JOB --slot ISO`: runs that slot (a failed or missed one, as `ops doctor` suggests).
- `run JOB --function-name NAME`: the same through a Lambda invoke of the deployed job function.
- `run JOB --at TIME [--slot ISO]`: django-celery-beat's clocked schedule. Creates a one-time EventBridge
  Scheduler schedule, `at(TIME)` in the job's schedule's zone, deleted once it has fired
  (ActionAfterCompletion DELETE), named `<the job's schedule's prefix>once-<job>-<yyyymmddhhmm>`. Its target is
  copied from the job's deployed schedule (function ARN, role, DLQ, retry policy), so the one-off run goes
  exactly where a scheduled one would; its Input is the schedule's own with the slot written in (TIME
  unless --slot is given), and Scheduler fills in the execution id and attempt as for any delivery.
- `send TASK --args JSON`: validates the arguments against the task's model and enqueues one unit.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from expensebot_tools.console import CliError, opened_runtime, print_json

# Scheduler's limit for a schedule's name.
MAX_SCHEDULE_NAME = 64
# The marker of one-off schedules in a name, so the lists can tell them from the template's schedules.
ONCE_MARKER = "once-"


def parse_time(text: str, tz: Any, option: str) -> datetime:
    """An ISO date and time; without a zone, in `tz` (the schedule's, i.e. the app's, zone)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CliError(f"{option} {text!r} is not an ISO date and time, e.g. 2026-03-10T09:00") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def job_schedule(job: str) -> Any:
    """The template's ScheduleV2 of a job (matched by the job its Input names)."""
    from expensebot_tools.project.template import Template

    for spec in Template().schedules():
        try:
            named = json.loads(spec.input).get("job")
        except ValueError:
            continue
        if named == job:
            return spec
    raise CliError(f"template.yaml has no schedule for {job!r}; pass --slot")


def latest_due_slot(expression: str, zone: str, now: datetime) -> datetime:
    """The last time the expression fired at or before `now`, in the schedule's zone: the slot Scheduler
    would have delivered last."""
    from expensebot_tools.project.schedules import fire_times

    window = timedelta(days=2)
    while window <= timedelta(days=5 * 366):
        fired = fire_times(expression, zone, now - window, now + timedelta(microseconds=1))
        if fired:
            return fired[-1]
        window *= 8
    raise CliError(f"{expression} in {zone} has not fired in the last five years; pass --slot")


def _scheduled_slot(runtime: Any, job: str) -> datetime:
    schedule = job_schedule(job)
    # The template gives every schedule the TimeZone parameter, which is also the functions' APP_TIMEZONE.
    zone = schedule.timezone if isinstance(schedule.timezone, str) else runtime.settings.app_timezone
    return latest_due_slot(schedule.expression, zone, runtime.clock.now())


def _outcome_line(job: str, slot: datetime, outcome: dict[str, Any]) -> str:
    if outcome.get("status") == "duplicate":
        return f"{job} for {slot.isoformat()}: duplicate: already ran (or is running) for this slot; nothing done"
    details = outcome.get("details")
    return (f"{job} for {slot.isoformat()}: {outcome.get('status')}, run {outcome.get('run_id')}, "
            f"planned {outcome.get('planned')}, enqueued {outcome.get('enqueued')}"
            + (f", {json.dumps(details, ensure_ascii=False)}" if details else ""))


def cmd_run(args: argparse.Namespace) -> int:
    from expensebot.scheduling import ScheduledInvocation, jobs, run_scheduled_job

    known = jobs()
    if args.job not in known:
        raise CliError(f"unknown job {args.job!r}; jobs are {', '.join(sorted(known))}")
    if args.at:
        if args.function_name:
            raise CliError("--at schedules the job's own target; it takes no --function-name")
        return schedule_once(args)
    with opened_runtime() as runtime:
        tz = runtime.settings.tz
        slot = parse_time(args.slot, tz, "--slot") if args.slot else _scheduled_slot(runtime, args.job)
        invocation = ScheduledInvocation(job=args.job, scheduled_time=slot, execution_id="expensebot-ops-run")
        if args.function_name:
            import boto3

            response = boto3.client("lambda").invoke(
                FunctionName=args.function_name, Payload=invocation.model_dump_json().encode())
            outcome = json.loads(response["Payload"].read() or b"null")
            if response.get("FunctionError"):
                raise CliError(f"{args.function_name} failed: {outcome}")
        else:
            outcome = run_scheduled_job(invocation, runtime=runtime).model_dump(mode="json")
    if args.json:
        print_json(outcome)
    else:
        print(_outcome_line(args.job, slot.astimezone(tz), outcome))
    return 0


# --- one-off runs at a given time ------------------------------------------------------------------------


def _job_of(schedule: dict[str, Any]) -> str | None:
    try:
        return json.loads(schedule.get("Target", {}).get("Input", "{}")).get("job")
    except ValueError:
        return None


def deployed_schedule(scheduler: Any, job: str, prefix: str) -> dict[str, Any]:
    """The deployed schedule that runs the job (GetSchedule's whole answer), found among the schedules whose
    name starts with the prefix by the job its Input names; one-off schedules are not candidates."""
    kwargs: dict[str, Any] = {"NamePrefix": prefix} if prefix else {}
    candidates = []
    while True:
        page = scheduler.list_schedules(**kwargs)
        candidates += [(s["Name"], s.get("GroupName", "default")) for s in page.get("Schedules", [])
                       if s["Name"].startswith(prefix) and ONCE_MARKER not in s["Name"]]
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    for name, group in sorted(candidates):
        schedule = scheduler.get_schedule(Name=name, GroupName=group)
        if _job_of(schedule) == job:
            return dict(schedule)
    raise CliError(f"no deployed schedule named {prefix}* runs {job!r}: deploy the stack (or `local up`), "
                   "or pass --prefix expensebot-<Stage>-")


def once_schedule_name(schedule_name: str, job: str, at: datetime) -> str:
    """`expensebot-dev-send_monthly_reports` → `expensebot-dev-once-send_monthly_reports-202611302000`."""
    stem = schedule_name[: -len(job)] if schedule_name.endswith(job) else f"{schedule_name}-"
    name = f"{stem}{ONCE_MARKER}{job}-{at:%Y%m%d%H%M}"
    if len(name) > MAX_SCHEDULE_NAME:
        raise CliError(f"{name} is longer than Scheduler's {MAX_SCHEDULE_NAME} characters")
    return name


def once_input(template_input: str, slot: datetime) -> str:
    """The job's Scheduler event with the slot written in: Scheduler still fills in the execution id and
    the attempt, and the job reads the slot it was asked to run."""
    utc = slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return template_input.replace("<aws.scheduler.scheduled-time>", utc)


def create_once_schedule(scheduler: Any, deployed: dict[str, Any], job: str, at: datetime,
                         slot: datetime) -> dict[str, Any]:
    """Creates the one-time schedule; returns the CreateSchedule request it made."""
    from zoneinfo import ZoneInfo

    zone = deployed.get("ScheduleExpressionTimezone") or "UTC"
    local = at.astimezone(ZoneInfo(zone))
    target = {key: value for key, value in deployed["Target"].items() if value is not None}
    target["Input"] = once_input(deployed["Target"].get("Input", "{}"), slot)
    request = {
        "Name": once_schedule_name(deployed["Name"], job, local),
        "GroupName": deployed.get("GroupName", "default"),
        "ScheduleExpression": f"at({local:%Y-%m-%dT%H:%M:%S})",
        "ScheduleExpressionTimezone": zone,
        "ActionAfterCompletion": "DELETE",
        "State": "ENABLED",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Description": f"one-off run of {job} for {slot.isoformat()} (expensebot ops run --at)",
        "Target": target,
    }
    try:
        scheduler.create_schedule(**request)
    except scheduler.exceptions.ConflictException as exc:
        raise CliError(f"{request['Name']} exists already: a one-off run of {job} at that minute is "
                       "scheduled (`ops schedules --prefix ''` lists it)") from exc
    return request


def schedule_once(args: argparse.Namespace) -> int:
    import boto3

    with opened_runtime() as runtime:
        tz = runtime.settings.tz
        now = runtime.clock.now()
    at = parse_time(args.at, tz, "--at").replace(microsecond=0)
    if at <= now:
        raise CliError(f"--at {at.isoformat()} has passed; for a run now leave --at out")
    slot = parse_time(args.slot, tz, "--slot") if args.slot else at
    scheduler = boto3.client("scheduler")
    request = create_once_schedule(scheduler, deployed_schedule(scheduler, args.job, args.prefix), args.job, at,
                                   slot)
    if args.json:
        print_json(request)
    else:
        print(f"{args.job}: one-off run at {request['ScheduleExpression']} {request['ScheduleExpressionTimezone']}"
              f" for slot {slot.astimezone(tz).isoformat()}: schedule {request['Name']} (Scheduler deletes it once"
              " it has fired; `ops schedules --prefix ''` lists it)")
    return 0


# --- send ------------------------------------------------------------------------------------------------


def cmd_send(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from expensebot.tasks import lookup

    task = lookup(args.task)
    try:
        task_args = task.args_model.model_validate_json(args.args)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}" for e in exc.errors())
        raise CliError(f"invalid --args for {task.name}: {problems}") from None
    with opened_runtime() as runtime:
        message_id = task.delay(task_args, runtime=runtime)
    print(f"sent {task.name} to the {task.queue!r} queue: message {message_id}")
    return 0


def add_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="run a job for its latest due slot, a given slot, or once at a given time")
    run.add_argument("job", help="the job's name (`expensebot ops tasks` lists them)")
    run.add_argument("--slot", help="the scheduled time to run for (ISO; no zone: the app's zone); default: the "
                                    "schedule's latest due slot, so a repeat is a duplicate")
    run.add_argument("--at", help="do not run now: create a one-time Scheduler schedule that runs it at this time "
                                  "(ISO; no zone: the schedule's zone), deleted once it has fired")
    run.add_argument("--prefix", "--stack-prefix", dest="prefix", default="expensebot-",
                     help="with --at: the deployed schedules' name prefix, e.g. expensebot-prod- "
                          "(default expensebot-)")
    run.add_argument("--function-name", help="invoke this deployed job function instead of running in-process")
    run.add_argument("--json", action="store_true", help="print the outcome (or the created schedule) as JSON")
    run.set_defaults(func=cmd_run)

    send = sub.add_parser("send", help="enqueue one unit of a task")
    send.add_argument("task", help="the task's name (`expensebot ops tasks` lists them)")
    send.add_argument("--args", default="{}", help="the task's arguments as JSON (validated first)")
    send.set_defaults(func=cmd_send)
