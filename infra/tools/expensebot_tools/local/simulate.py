"""`expensebot simulate`: the whole application over a window of virtual time, on the embedded stack.

A virtual clock runs from --start to --end. In time order: each Telegram update of --updates goes through the
webhook handler at its message date (file order kept: an update dated before the previous one is delivered
with it); each schedule of template.yaml fires its job handler at every time Scheduler would fire it
(expensebot_tools.project.schedules: the schedule's time zone, daylight saving included); after each event the
worker queues are drained through their handlers, as the event source mapping does. Moto's SQS is made to
follow the virtual clock, so a delay, a visibility timeout or a redelivery after N seconds happens after N
virtual seconds; the queues are drained again at each such moment. A job that raises is retried twice, as
Lambda's async invocation does, then its event goes to JobFailureQueue. Every Bot API call is one line of
--outbox. Times without an offset are in the app's zone (APP_TIMEZONE, else the template's TimeZone).

--faults plays failures into the run at their times (Telegram answering 5xx or 429, a user blocking the bot,
a queue out of reach, a message no worker can read), and --metrics keeps every CloudWatch metric line (EMF) the
functions printed, stamped with the virtual time: `ops dashboard --from-emf FILE` draws them."""

from __future__ import annotations

import argparse
import os
import shutil
import time
import traceback
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.console import Console
from rich.table import Table

from expensebot_tools.console import EXIT_OK, EXIT_PROBLEM, CliError
from expensebot_tools.local.metrics import captured_metrics
from expensebot_tools.local.stack import (
    LOCAL_BOT_TOKEN,
    EmbeddedPostgres,
    LocalSystem,
    environment,
    migrate_database,
    running_system,
)
from expensebot_tools.project.json_lines import json_lines
from expensebot_tools.project.schedules import fire_times
from expensebot_tools.project.template import Resolver, Template

JOB_RETRIES = 2  # EventInvokeConfig.MaximumRetryAttempts of every scheduled function
JOB_FAILURE_QUEUE = "JobFailureQueue"
LOCAL_ACCOUNT = "123456789012"  # moto's default account
LOCAL_FUNCTION_PREFIX = "expensebot-local-"  # `local up` names each function expensebot-local-<LogicalId>
# Within one instant, faults start first, then updates come before the schedules that fire then, and drains
# after them all.
FAULT, UPDATE, SCHEDULE = -1, 0, 1
# One key per line of --faults besides "at", and what its value is.
FAULT_KINDS = {
    "telegram_errors": "the fraction (0..1) of Bot API calls answered 500/502 from then on; 0 ends the outage",
    "too_many_requests": "how many sendMessage calls from then on answer 429 (with \"retry_after\", default 30 s)",
    "block_chat": "a chat id: it answers 403 (the user blocked the bot) from then on",
    "unblock_chat": "a chat id blocked before: it takes messages again",
    "queue_unavailable": "a queue's logical id: SQS answers QueueDoesNotExist for it until queue_available",
    "queue_available": "a queue's logical id made unavailable before: back, with its messages",
    "poison_message": "a queue's logical id: a message no worker can read is sent to it (its DLQ gets it)",
}


class SimulationInputError(ValueError):
    """A bad argument or input file: reported in one line, nothing run."""


@dataclass(frozen=True)
class Happening:
    at: datetime
    kind: int
    order: int
    update: dict[str, Any] | None = None
    function_id: str = ""
    fault: dict[str, Any] | None = None

    def key(self) -> tuple[datetime, int, int]:
        return (self.at, self.kind, self.order)


@dataclass
class SimulationReport:
    start: datetime
    end: datetime
    updates: int = 0
    fired: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    processed: Counter[str] = field(default_factory=Counter)
    redelivered: Counter[str] = field(default_factory=Counter)
    sent_by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    dlq_depths: dict[str, int] = field(default_factory=dict)
    bot_calls: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def parse_time(text: str, zone: ZoneInfo, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SimulationInputError(f"{option} {text!r}: not an ISO 8601 time such as 2026-03-01T00:00") from None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def _update_date(update: dict[str, Any]) -> int | None:
    for key in ("message", "edited_message", "channel_post", "edited_channel_post", "business_message"):
        inner = update.get(key)
        if isinstance(inner, dict):
            stamp = inner.get("edit_date") if key.startswith("edited") and "edit_date" in inner else inner.get("date")
            if isinstance(stamp, int):
                return stamp
    callback = update.get("callback_query")
    if isinstance(callback, dict) and isinstance(callback.get("message"), dict):
        stamp = callback["message"].get("date")
        return stamp if isinstance(stamp, int) else None
    return None


def _lines(path: Path, label: str) -> Iterator[tuple[str, Any]]:
    try:
        yield from json_lines(path, label)
    except OSError as exc:
        raise SimulationInputError(f"{label}: cannot read: {exc}") from None
    except ValueError as exc:
        raise SimulationInputError(str(exc)) from None


def read_updates(path: Path, start: datetime, end: datetime, zone: ZoneInfo) -> list[Happening]:
    """The updates file as happenings; an update without a date goes with the one before it."""
    found: list[Happening] = []
    previous = start
    for where, update in _lines(path, f"--updates {path}"):
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            raise SimulationInputError(f"{where}: not a Telegram Update (no update_id)")
        stamp = _update_date(update)
        at = previous if stamp is None else datetime.fromtimestamp(stamp, UTC).astimezone(zone)
        if not start <= at < end:
            raise SimulationInputError(
                f"{where}: dated {at.isoformat()}, outside the window "
                f"{start.isoformat()} .. {end.isoformat()}"
            )
        at = max(at, previous)  # file order wins over an earlier date
        found.append(Happening(at=at, kind=UPDATE, order=len(found), update=update))
        previous = at
    return found


def read_faults(path: Path, start: datetime, end: datetime, zone: ZoneInfo,
                queue_ids: set[str] | None = None) -> list[Happening]:
    """The --faults file: one JSON object per line with "at" (ISO time) and one of FAULT_KINDS."""
    found = []
    for where, fault in _lines(path, f"--faults {path}"):
        if not isinstance(fault, dict) or not isinstance(fault.get("at"), str):
            raise SimulationInputError(f"{where}: expected an object with \"at\" (an ISO time)")
        kinds = [key for key in fault if key in FAULT_KINDS]
        unknown = sorted(set(fault) - set(FAULT_KINDS) - {"at", "retry_after"})
        if len(kinds) != 1 or unknown:
            raise SimulationInputError(f"{where}: expected exactly one of {', '.join(FAULT_KINDS)}"
                                       + (f"; unknown key(s) {', '.join(unknown)}" if unknown else ""))
        kind, value = kinds[0], fault[kinds[0]]
        if kind.startswith("queue_") or kind == "poison_message":
            if not isinstance(value, str) or (queue_ids is not None and value not in queue_ids):
                raise SimulationInputError(f"{where}: {kind} {value!r} is not a queue of template.yaml")
        elif not isinstance(value, int | float) or isinstance(value, bool) or (
                kind == "telegram_errors" and not 0 <= value <= 1):
            raise SimulationInputError(f"{where}: {kind}: {FAULT_KINDS[kind]}")
        at = parse_time(fault["at"], zone, where + ": at")
        if not start <= at < end:
            raise SimulationInputError(f"{where}: at {at.isoformat()} is outside the window")
        found.append(Happening(at=at, kind=FAULT, order=len(found), fault=fault))
    return found


def demo_updates(start: datetime, end: datetime, zone: ZoneInfo) -> tuple[list[Happening], list[Any]]:
    """The demo's users and what they type: demo.py's morning on the first day, then a few expenses a week."""
    from expensebot_tools.local.demo_world import SCRIPT, USERS
    from expensebot_tools.local.updates import UpdateFactory

    factory = UpdateFactory(first_update_id=900_000)
    first_morning = start.astimezone(zone).replace(hour=9, minute=0, second=0, microsecond=0)
    if first_morning < start:
        first_morning += timedelta(days=1)
    script: list[tuple[datetime, Any, str]] = [
        (first_morning + timedelta(minutes=minutes), user, text) for minutes, user, text in SCRIPT
    ]
    everyday = ("350 кофе", "1200 продукты", "600 такси", "45 lunch")
    day = first_morning + timedelta(days=2, hours=4)
    index = 0
    while day < end:
        user = USERS[index % len(USERS)]
        text = everyday[3] if user.language_code == "en" else everyday[index % 3]
        script.append((day + timedelta(minutes=7 * (index % 5)), user, text))
        index += 1
        day += timedelta(days=1) if index % len(USERS) == 0 else timedelta(0)
    happenings = [
        Happening(at=at, kind=UPDATE, order=-len(script) + i, update=factory.message(user, text, at))
        for i, (at, user, text) in enumerate(sorted(script, key=lambda item: item[0]))
        if start <= at < end
    ]
    return happenings, list(USERS)


@contextmanager
def sqs_follows(clock_now: Callable[[], datetime]) -> Iterator[None]:
    """Moto's SQS reads the time through unix_time()/unix_time_millis() imported into moto.sqs.models: point
    those at the virtual clock for the block, so delays and visibility timeouts pass in virtual time."""
    import moto.sqs.models as sqs_models

    original_seconds, original_millis = sqs_models.unix_time, sqs_models.unix_time_millis

    def virtual_seconds(dt: Any = None) -> float:
        return original_seconds(dt) if dt is not None else clock_now().timestamp()

    def virtual_millis(dt: Any = None) -> float:
        return original_millis(dt) if dt is not None else clock_now().timestamp() * 1000.0

    sqs_models.unix_time, sqs_models.unix_time_millis = virtual_seconds, virtual_millis  # type: ignore[assignment]
    try:
        yield
    finally:
        sqs_models.unix_time, sqs_models.unix_time_millis = original_seconds, original_millis  # type: ignore


def _moto_queue(url: str) -> Any:
    from moto.sqs.models import sqs_backends

    account, name = url.rstrip("/").split("/")[-2:]
    return sqs_backends[account][os.environ.get("AWS_DEFAULT_REGION", "us-east-1")].queues[name]


class Simulation:
    """Drives a LocalSystem through happenings: the clock, the event sources Lambda would run, the report."""

    def __init__(self, system: LocalSystem, report: SimulationReport) -> None:
        self.system = system
        self.report = report
        self.worker_queues = [s.queue_id for s in system.template.subscriptions()]
        self._moto_queues = {q: _moto_queue(system.queues.urls[q]) for q in self.worker_queues}
        self._schedule_inputs = {s.function_id: s.input for s in system.template.schedules()}
        self._unavailable: dict[str, Any] = {}  # queue id → moto's queue, taken out of its backend

    def next_due(self) -> datetime | None:
        """The earliest virtual time a message now held back (delayed or in flight) becomes receivable."""
        now_ms = self.system.clock.now().timestamp() * 1000
        due = [
            max(m.visible_at, m.delayed_until)
            for queue_id, queue in self._moto_queues.items() if queue_id not in self._unavailable
            for m in list(queue._messages)
            if max(m.visible_at, m.delayed_until) >= now_ms
        ]
        return datetime.fromtimestamp(min(due) / 1000 + 0.001, UTC) if due else None

    def _receivable(self, queue_id: str) -> bool:
        if queue_id in self._unavailable:
            return False
        now_ms = self.system.clock.now().timestamp() * 1000
        messages = list(self._moto_queues[queue_id]._messages)
        return any(now_ms > m.visible_at and now_ms >= m.delayed_until for m in messages)

    def drain_all(self) -> None:
        """Every worker queue until nothing is receivable now (a worker may enqueue on another queue)."""
        for _ in range(100):
            busy = False
            for queue_id in self.worker_queues:
                if self._receivable(queue_id):
                    busy = True
                    self._drain(queue_id)
            if not busy:
                return

    def _drain(self, queue_id: str) -> None:
        system = self.system
        batch_size = next(s.batch_size for s in system.template.subscriptions() if s.queue_id == queue_id)
        for _ in range(10_000):
            received = system.receive_raw(queue_id, max_messages=min(10, batch_size))
            if not received:
                return
            for message in received:
                if int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1")) > 1:
                    self.report.redelivered[queue_id] += 1
            try:
                response = system.invoke_worker(queue_id, received)
            except Exception as exc:  # the whole batch failed: its messages come back after the timeout
                self._fail(f"{queue_id} worker raised {type(exc).__name__}: {exc}")
                continue
            failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
            system.delete(queue_id, [m for m in received if m["MessageId"] not in failed])
            self.report.processed[queue_id] += len(received) - len(failed)
            for message_id in sorted(failed):
                self._fail(f"{queue_id}: message {message_id} failed (will be redelivered)")

    def _fail(self, text: str) -> None:
        self.report.failures.append(f"{self.system.clock.now().isoformat(timespec='seconds')} {text}")

    def inject(self, fault: dict[str, Any]) -> None:
        """Starts or ends one failure of --faults (FAULT_KINDS)."""
        from moto.sqs.models import sqs_backends

        telegram = self.system.telegram
        if "telegram_errors" in fault:
            telegram.set_failures(fail_fraction=float(fault["telegram_errors"]))
        elif "too_many_requests" in fault:
            telegram.set_failures(too_many_requests=int(fault["too_many_requests"]),
                                  retry_after=int(fault.get("retry_after", 30)))
        elif "block_chat" in fault:
            telegram.block(int(fault["block_chat"]))
        elif "unblock_chat" in fault:
            telegram.unblock(int(fault["unblock_chat"]))
        elif "poison_message" in fault:
            self.system.sqs.send_message(QueueUrl=self.system.queues.urls[fault["poison_message"]],
                                         MessageBody='{"not": "a task message"}')
        else:
            # Moto answers QueueDoesNotExist for a queue missing from its backend; putting the same object back
            # restores it with its messages, as a queue whose endpoint was out of reach.
            queue_id = fault.get("queue_unavailable") or fault["queue_available"]
            account, name = self.system.queues.urls[queue_id].rstrip("/").split("/")[-2:]
            backend = sqs_backends[account][os.environ.get("AWS_DEFAULT_REGION", "us-east-1")]
            if "queue_unavailable" in fault and queue_id not in self._unavailable:
                self._unavailable[queue_id] = backend.queues.pop(name)
            elif "queue_available" in fault and queue_id in self._unavailable:
                backend.queues[name] = self._unavailable.pop(queue_id)

    def deliver(self, happening: Happening) -> None:
        if happening.fault is not None:
            self.inject(happening.fault)
            return
        if happening.update is not None:
            self.report.updates += 1
            try:
                response = self.system.post_update(happening.update)
            except Exception as exc:
                self._fail(f"webhook raised {type(exc).__name__} on update {happening.update.get('update_id')}: {exc}")
                return
            if int((response or {}).get("statusCode", 200)) >= 400:
                update_id = happening.update.get("update_id")
                self._fail(f"webhook answered {response.get('statusCode')} to update {update_id}")
            return
        self.fire(happening.function_id, happening.at)

    def fire(self, function_id: str, at: datetime) -> None:
        """One delivery by Scheduler, run as Lambda runs an asynchronous invocation: the same event on the
        first attempt and each retry, then, if every attempt raised, Lambda's on-failure record (the event,
        the last error) to JobFailureQueue, as the template's EventInvokeConfig sends it."""
        from expensebot_tools.local.events import schedule_event
        from expensebot_tools.project.aws_records import async_failure_record

        self.report.fired[function_id] += 1
        event = schedule_event(self._schedule_inputs[function_id], at)
        failure: Exception | None = None
        for _ in range(1 + JOB_RETRIES):
            try:
                outcome = self.system.invoke(function_id, event)
            except Exception as exc:
                failure = exc
                continue
            if isinstance(outcome, dict) and outcome.get("status") == "duplicate":
                self.report.duplicates[function_id] += 1
            return
        assert failure is not None
        self._fail(f"{function_id} failed {1 + JOB_RETRIES} times: {type(failure).__name__}: {failure}")
        if JOB_FAILURE_QUEUE in self.system.queues.urls:
            record = async_failure_record(
                local_function_arn(function_id), str(uuid.uuid4()), event, type(failure).__name__, str(failure),
                1 + JOB_RETRIES, stack_trace=traceback.format_exception(failure)[-5:],
                timestamp=self.system.clock.now())
            self.system.sqs.send_message(QueueUrl=self.system.queues.urls[JOB_FAILURE_QUEUE], MessageBody=record)

    def advance_to(self, moment: datetime) -> None:
        """Moves the clock to the moment, stopping wherever a held-back message becomes due to drain it."""
        while (due := self.next_due()) is not None and due <= moment:
            self.system.clock.set(max(due, self.system.clock.now()))
            self.drain_all()
        # Never backwards: a worker pacing its sends sleeps on the virtual clock, past the next happening maybe.
        self.system.clock.set(max(moment, self.system.clock.now()))


def local_function_arn(function_id: str) -> str:
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    return f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT}:function:{LOCAL_FUNCTION_PREFIX}{function_id}"


def template_zone_name(template: Template) -> str:
    return os.environ.get("APP_TIMEZONE") or str(template.parameter_defaults().get("TimeZone") or "UTC")


# Set by the local stack itself, or (APP_TIMEZONE) read as the simulation's zone.
_LOCAL_VARIABLES = frozenset({"APP_TIMEZONE", "DATABASE_URL", "TELEGRAM_API_BASE", "TELEGRAM_BOT_TOKEN"})


def parameters_from_environment(template: Template) -> dict[str, str]:
    """Template parameters for the function variables set in this process's environment (ADMIN_CHAT_IDS,
    RETENTION_DAYS, BUDGET_THRESHOLDS, ...): the local stack resolves the functions' environment from the
    template's parameters, so a variable the user exported reaches the functions through its parameter."""
    declared = template.raw.get("Parameters", {})
    found = {}
    for name, value in template.globals.get("Environment", {}).get("Variables", {}).items():
        if (isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in declared
                and name not in _LOCAL_VARIABLES and os.environ.get(name)):
            found[value["Ref"]] = os.environ[name]
    return found


def plan_schedules(template: Template, zone_name: str, start: datetime, end: datetime) -> list[Happening]:
    """Every fire of every ENABLED schedule of the template in the window."""
    resolver = Resolver(parameters={**template.parameter_defaults(), **parameters_from_environment(template),
                                    "TimeZone": zone_name})
    found = []
    for spec in template.schedules():
        if str(resolver.resolve(spec.state)).upper() == "DISABLED":
            continue
        timezone = str(resolver.resolve(spec.timezone) or "UTC")
        for at in fire_times(spec.expression, timezone, start, end):
            found.append(Happening(at=at, kind=SCHEDULE, order=len(found), function_id=spec.function_id))
    return found


def simulate(*, start: datetime, end: datetime, zone_name: str, updates: list[Happening], demo: bool = False,
             outbox: Path | None = None, state: Path | None = None, database_url: str | None = None,
             console: Console | None = None, faults: list[Happening] | None = None,
             metrics: Path | None = None) -> SimulationReport:
    """Runs the window; returns what happened. Raises SimulationInputError before running for bad input."""
    from moto import mock_aws

    from expensebot.clock import VirtualClock
    from expensebot_tools.local.telegram import TelegramStandIn

    console = console or Console(stderr=True)
    started = time.monotonic()
    template = Template()
    zone = ZoneInfo(zone_name)
    happenings = [*updates, *(faults or [])]
    demo_users: list[Any] = []
    if demo:
        extra, demo_users = demo_updates(start, end, zone)
        happenings.extend(extra)
    happenings.extend(plan_schedules(template, zone_name, start, end))
    happenings.sort(key=Happening.key)
    report = SimulationReport(start=start, end=end)

    clock = VirtualClock(start.astimezone(zone))
    if outbox is not None:
        outbox.parent.mkdir(parents=True, exist_ok=True)
        outbox.write_text("", encoding="utf-8")
        # The files of an earlier run would sit beside this run's outbox under the same message ids.
        shutil.rmtree(TelegramStandIn.files_dir_of(outbox), ignore_errors=True)
    if metrics is not None:
        metrics.parent.mkdir(parents=True, exist_ok=True)
        metrics.write_text("", encoding="utf-8")
    postgres = EmbeddedPostgres(state / "postgres" if state is not None else None)
    url = database_url or postgres.start()
    fake_aws = {"AWS_ACCESS_KEY_ID": "simulate", "AWS_SECRET_ACCESS_KEY": "simulate", "AWS_DEFAULT_REGION": "us-east-1"}
    if metrics is not None:
        fake_aws["POWERTOOLS_METRICS_DISABLED"] = "false"  # Powertools prints only when enabled; the run keeps them
    try:
        with (environment(fake_aws), mock_aws(), sqs_follows(clock.now),
              TelegramStandIn(tokens=[LOCAL_BOT_TOKEN], clock=lambda: clock.now().astimezone(zone),
                              outbox_path=outbox, enforce_limits=False, accept_any_chat=True) as telegram):
            migrate_database(url, timezone=zone_name)
            for user in demo_users:
                telegram.add_chat(user.user_id, first_name=user.first_name, language_code=user.language_code)
            with running_system(template=template, database_url=url, telegram=telegram, clock=clock,
                                parameters={**parameters_from_environment(template), "TimeZone": zone_name}) as system:
                run = Simulation(system, report)
                with captured_metrics(metrics, clock=clock.now) if metrics is not None else nullcontext():
                    _play(run, happenings, console)
                    run.advance_to(end)
                _collect(system, report, start, end)
                report.bot_calls = len(telegram.calls)
    finally:
        if not database_url:
            postgres.stop()
    report.seconds = time.monotonic() - started
    return report


def _play(run: Simulation, happenings: list[Happening], console: Console) -> None:
    from expensebot.observability import metrics

    progress: Any = nullcontext()
    task = None
    if console.is_terminal:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("simulating {task.fields[at]}"), BarColumn(),
                            TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console,
                            transient=True)
    with progress:
        if task is None and console.is_terminal:
            task = progress.add_task("simulate", total=len(happenings), at="")
        for happening in happenings:
            run.advance_to(happening.at)
            run.deliver(happening)
            run.drain_all()
            # With metrics disabled, Powertools never flushes, so values pile up across invocations until its
            # 100-value auto-flush prints them; Lambda would have flushed after each invocation.
            metrics.clear_metrics()
            if task is not None:
                progress.update(task, advance=1, at=f"{happening.at:%Y-%m-%d %H:%M}")


def _collect(system: LocalSystem, report: SimulationReport, start: datetime, end: datetime) -> None:
    from expensebot.bootstrap import get_runtime

    rows = get_runtime().db.fetch_all(
        "SELECT kind, status, count(*) AS n FROM notifications WHERE created_at >= %s AND created_at < %s "
        "GROUP BY kind, status ORDER BY kind, status",
        (start, end),
    )
    for row in rows:
        report.sent_by_kind.setdefault(row["kind"], {})[row["status"]] = int(row["n"])
    for queue_id, url in system.queues.urls.items():
        if "DeadLetter" in queue_id or queue_id == JOB_FAILURE_QUEUE:
            attributes = system.sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            report.dlq_depths[queue_id] = int(attributes["ApproximateNumberOfMessages"]) + int(
                attributes["ApproximateNumberOfMessagesNotVisible"])


def print_summary(report: SimulationReport, console: Console, zone_name: str) -> None:
    console.print(f"[bold]expensebot simulate[/bold] {report.start.isoformat()} .. {report.end.isoformat()} "
                  f"({zone_name}): {report.updates} update(s), {sum(report.fired.values())} schedule fire(s), "
                  f"{report.bot_calls} Bot API call(s) in {report.seconds:.1f} s")
    jobs = Table(title="schedules fired", box=None, padding=(0, 1))
    jobs.add_column("function")
    jobs.add_column("fired", justify="right")
    jobs.add_column("duplicate", justify="right")
    for function_id, count in sorted(report.fired.items()):
        jobs.add_row(function_id, str(count), str(report.duplicates.get(function_id, 0)))
    queues = Table(title="units processed", box=None, padding=(0, 1))
    queues.add_column("queue")
    queues.add_column("processed", justify="right")
    queues.add_column("redelivered", justify="right")
    for queue_id in sorted(set(report.processed) | set(report.redelivered)):
        queues.add_row(queue_id, str(report.processed.get(queue_id, 0)), str(report.redelivered.get(queue_id, 0)))
    kinds = Table(title="messages by kind (notifications)", box=None, padding=(0, 1))
    kinds.add_column("kind")
    kinds.add_column("sent", justify="right")
    kinds.add_column("other", justify="right")
    for kind, statuses in sorted(report.sent_by_kind.items()):
        other = ", ".join(f"{status} {n}" for status, n in sorted(statuses.items()) if status != "sent")
        kinds.add_row(kind, str(statuses.get("sent", 0)), other or "-")
    dlqs = Table(title="dead-letter queues", box=None, padding=(0, 1))
    dlqs.add_column("queue")
    dlqs.add_column("depth", justify="right")
    for queue_id, depth in sorted(report.dlq_depths.items()):
        dlqs.add_row(queue_id, str(depth), style="red" if depth else "")
    for table in (jobs, queues, kinds, dlqs):
        console.print(table)
    if report.failures:
        console.print(f"[red]{len(report.failures)} failure(s):[/red]")
        for line in report.failures[:20]:
            console.print(f"  {line}", markup=False)
        if len(report.failures) > 20:
            console.print(f"  … and {len(report.failures) - 20} more")
    else:
        console.print("no failures")


def cmd_simulate(args: argparse.Namespace) -> int:
    template = Template()
    zone_name = template_zone_name(template)
    try:
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise SimulationInputError(f"time zone {zone_name!r} (APP_TIMEZONE) is not a known zone") from None
        start = parse_time(args.start, zone, "--start")
        end = parse_time(args.end, zone, "--end")
        if end <= start:
            raise SimulationInputError(f"--end {args.end} is not after --start {args.start}")
        updates = read_updates(Path(args.updates), start, end, zone) if args.updates else []
        faults = read_faults(Path(args.faults), start, end, zone, set(template.queues)) if args.faults else []
        state = Path(args.state) if args.state else None
        if state is not None and state.exists() and not state.is_dir():
            raise SimulationInputError(f"--state {state}: not a directory")
    except SimulationInputError as exc:
        raise CliError(str(exc)) from None
    # As in Lambda, Powertools reads its settings when the library is first imported: set them first.
    # With --metrics, Powertools prints each flush (EMF) and the run takes those lines out of stdout.
    quiet = {"POWERTOOLS_SERVICE_NAME": "expensebot", "POWERTOOLS_METRICS_NAMESPACE": "ExpenseBot",
             "POWERTOOLS_METRICS_DISABLED": "false" if args.metrics else "true",
             "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING")}
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    with environment(quiet):
        from expensebot.observability import logger

        logger.setLevel(quiet["POWERTOOLS_LOG_LEVEL"])
        report = simulate(start=start, end=end, zone_name=zone_name, updates=updates, demo=args.demo,
                          outbox=Path(args.outbox) if args.outbox else None, state=state,
                          database_url=args.database_url, faults=faults,
                          metrics=Path(args.metrics) if args.metrics else None)
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    print_summary(report, console, zone_name)
    # The contract of every command: a run that reported failures is a problem found.
    return EXIT_PROBLEM if report.failures else EXIT_OK


def add_parser(commands: Any) -> None:
    simulate_parser = commands.add_parser(
        "simulate", help="run the whole system over a window of virtual time (a month in seconds)")
    simulate_parser.add_argument("--start", required=True,
                                 help="e.g. 2026-03-01T00:00 (app time zone unless an offset)")
    simulate_parser.add_argument("--end", required=True, help="exclusive, e.g. 2026-04-01T00:00")
    simulate_parser.add_argument("--updates", metavar="FILE", help="Telegram Update objects, one JSON object per line")
    simulate_parser.add_argument("--outbox", metavar="FILE", help="write every Bot API call, one JSON object per line")
    simulate_parser.add_argument(
        "--faults", metavar="FILE",
        help="failures to play in, one JSON object per line: {\"at\": TIME, KIND: VALUE} with KIND one of "
             + "; ".join(f"{kind} ({meaning})" for kind, meaning in FAULT_KINDS.items()))
    simulate_parser.add_argument(
        "--metrics", metavar="FILE",
        help="write every CloudWatch metric line (EMF JSON) the functions printed, at its virtual time, one per "
             "line: `expensebot ops dashboard --from-emf FILE` draws them")
    simulate_parser.add_argument("--state", metavar="DIR", help="keep the embedded database in DIR between runs")
    simulate_parser.add_argument("--demo", action="store_true", help="load demo users and expenses first")
    simulate_parser.add_argument("--database-url", help="a PostgreSQL database to use instead of the embedded one")
    simulate_parser.set_defaults(func=cmd_simulate)
