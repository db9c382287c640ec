"""`make demo`: the budget check end to end on the embedded stack, told as a timeline.

Four users write to the bot through the webhook; the check_budget_limits schedule fires every half
hour; the notifications worker drains the queue; every message the bot sent is shown as it arrived
at the Telegram stand-in. The run also replays a duplicate schedule delivery and a duplicate SQS
delivery, to show that neither sends anything twice."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from rich.text import Text

from expensebot_tools.local_stack import (
    LOCAL_BOT_TOKEN,
    MIGRATIONS_DIR,
    EmbeddedPostgres,
    LocalQueues,
    LocalSystem,
    environment,
    local_environment,
    sqs_client,
)
from expensebot_tools.template import Template
from expensebot_tools.updates import FakeUser, UpdateFactory

USERS = (
    FakeUser(1001, "Анна", "anna"),
    FakeUser(1002, "Борис", "boris"),
    FakeUser(1003, "Вера", "vera"),
    FakeUser(1004, "Emma", "emma", language_code="en"),
)

# (minutes after 09:00, user, text): what the users type during the demo morning.
SCRIPT: tuple[tuple[int, FakeUser, str], ...] = (
    (0, USERS[0], "/start"),
    (1, USERS[0], "/budget 1000"),
    (2, USERS[0], "850 кофе"),
    (3, USERS[1], "/start"),
    (4, USERS[1], "/budget 20000"),
    (5, USERS[1], "продукты 12000"),
    (6, USERS[2], "/start"),
    (7, USERS[2], "/budget 5000"),
    (8, USERS[2], "такси 3500"),
    (9, USERS[3], "/start"),
    (10, USERS[3], "/budget 300"),
    (11, USERS[3], "coffee 120"),
    (35, USERS[1], "4500 аптека"),
    (40, USERS[2], "1800 ужин в ресторане"),
    (70, USERS[3], "movie tickets 200"),
)
CHECKS_EVERY = timedelta(minutes=30)
DEMO_HOURS = 2
BUDGET_JOB = "CheckBudgetLimitsFunction"


@dataclass
class Line:
    at: datetime
    who: str
    text: str
    style: str = ""


@contextmanager
def _mocked_aws() -> Iterator[None]:
    from moto import mock_aws

    fake = {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo", "AWS_DEFAULT_REGION": "us-east-1"}
    with environment(fake), mock_aws():
        yield


def run_demo(console: Console | None = None, *, day: datetime | None = None) -> list[Line]:
    from expensebot.adapters.database import Database
    from expensebot.adapters.migrations import apply_migrations
    from expensebot.bootstrap import build_runtime, set_runtime
    from expensebot.bot import webhook
    from expensebot.clock import VirtualClock
    from expensebot_tools.telegram_standin import TelegramStandIn

    console = console or Console()
    started = time.monotonic()
    template = Template()
    zone_name = os.environ.get("APP_TIMEZONE") or template.parameter_defaults()["TimeZone"]
    zone = ZoneInfo(zone_name)
    morning = (day or datetime.now(zone)).astimezone(zone).replace(hour=9, minute=0, second=0, microsecond=0)
    clock = VirtualClock(morning)

    postgres = EmbeddedPostgres()
    external_url = os.environ.get("DATABASE_URL")
    database_url = external_url or postgres.start()
    try:
        with _mocked_aws(), TelegramStandIn(tokens=[LOCAL_BOT_TOKEN], clock=clock.now, enforce_limits=False) as tg:
            database = Database(lambda: database_url, timezone=zone_name)
            apply_migrations(database, MIGRATIONS_DIR)
            database.close()
            sqs = sqs_client()
            queues = LocalQueues.create(template, sqs)
            env = local_environment(template, queues, database_url=database_url, telegram_api_base=tg.base_url,
                                    parameters={"TimeZone": zone_name})
            with environment(env):
                set_runtime(build_runtime(clock=clock))
                try:
                    system = LocalSystem(template=template, sqs=sqs, queues=queues, telegram=tg, clock=clock)
                    lines = _play(system, morning, console)
                finally:
                    webhook.reset()
                    set_runtime(None)
    finally:
        if not external_url:
            postgres.stop()
    _print(console, lines, morning, zone_name, time.monotonic() - started, external_url is not None)
    return lines


def _play(system: LocalSystem, morning: datetime, console: Console) -> list[Line]:
    lines: list[Line] = []
    updates = UpdateFactory()
    names = {u.user_id: u.first_name for u in USERS}
    for user in USERS:
        system.telegram.add_chat(user.user_id, first_name=user.first_name, language_code=user.language_code)
    seen_calls = 0

    def collect_bot_messages() -> None:
        nonlocal seen_calls
        calls = system.telegram.calls[seen_calls:]
        seen_calls += len(calls)
        for call in calls:
            if call.method == "sendMessage" and call.status == 200:
                chat = int(call.params["chat_id"])
                lines.append(Line(call.at, f"bot → {names.get(chat, chat)}", _brief(str(call.params["text"])), "green"))

    # Everything that happens, in time order: what users type, and the job's half-hourly slots.
    happenings: list[tuple[datetime, int, FakeUser | None, str]] = [
        (morning + timedelta(minutes=minutes), 0, user, text) for minutes, user, text in SCRIPT
    ]
    slot = morning + CHECKS_EVERY
    while slot <= morning + timedelta(hours=DEMO_HOURS):
        happenings.append((slot, 1, None, ""))
        slot += CHECKS_EVERY
    first_slot = morning + CHECKS_EVERY
    with console.status("running the demo…") if console.is_terminal else _nothing():
        for at, _, user, text in sorted(happenings, key=lambda h: (h[0], h[1])):
            system.clock.set(at)
            if user is not None:
                lines.append(Line(at, f"{user.first_name} → bot", text, "cyan"))
                system.post_update(updates.message(user, text, at))
            else:
                outcome = system.fire_schedule(BUDGET_JOB, at)
                lines.append(Line(at, "schedule", _describe_run(outcome), "yellow"))
                if at == first_slot:
                    duplicate = system.fire_schedule(BUDGET_JOB, at, attempt=2)
                    note = f"the same slot delivered again (attempt 2): {duplicate['status']}"
                    lines.append(Line(at, "schedule", note, "yellow"))
                drained = _drain_with_redelivery(system, redeliver=True)
                if drained:
                    lines.append(Line(at, "worker", drained, "magenta"))
            collect_bot_messages()
    return lines


def _brief(text: str, max_lines: int = 3) -> str:
    kept = text.splitlines()
    return text if len(kept) <= max_lines else "\n".join(kept[:2]) + " …"


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _describe_run(outcome: dict[str, Any]) -> str:
    if outcome["status"] == "duplicate":
        return "check_budget_limits: slot already ran (duplicate delivery)"
    if outcome["planned"] == 0:
        return "check_budget_limits: no budget crossed a new threshold"
    return f"check_budget_limits: {outcome['planned']} alert(s) planned, {outcome['enqueued']} enqueued"


def _drain_with_redelivery(system: LocalSystem, redeliver: bool) -> str:
    queue = "NotificationsQueue"
    messages = system.receive_raw(queue)
    if not messages:
        return ""
    first = system.invoke_worker(queue, messages)
    note = f"notifications worker: {len(messages)} message(s), {len(first['batchItemFailures'])} failed"
    if redeliver:
        # At-least-once delivery: SQS may hand the same messages to a worker again.
        second = system.invoke_worker(queue, messages)
        note += f"; the same batch redelivered: {len(second['batchItemFailures'])} failed, nothing re-sent"
    system.sqs.delete_message_batch(
        QueueUrl=system.queues.urls[queue],
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
    )
    return note


def _print(console: Console, lines: list[Line], morning: datetime, zone: str, seconds: float,
           external_db: bool) -> None:
    console.print()
    console.print(Text("ExpenseBot demo — the budget check, end to end", style="bold"))
    console.print(
        f"{'PostgreSQL (DATABASE_URL)' if external_db else 'embedded PostgreSQL'} · SQS (moto) · "
        f"Telegram Bot API stand-in · {zone} · {morning:%d %b %Y}"
    )
    table = Table(show_header=True, header_style="bold", show_lines=False, expand=False, box=None, padding=(0, 1))
    table.add_column("time", no_wrap=True)
    table.add_column("who", no_wrap=True)
    table.add_column("what")
    previous = ""
    for line in sorted(lines, key=lambda item: item.at):
        stamp = f"{line.at.astimezone(morning.tzinfo):%H:%M}"
        table.add_row(stamp if stamp != previous else "", Text(line.who, style=line.style), line.text)
        previous = stamp
    console.print(table)
    alerts = [line for line in lines if line.who.startswith("bot") and "%" in line.text and "/" not in line.text]
    console.print(f"\n{len(alerts)} budget alert(s) sent; run took {seconds:.1f} s.")
