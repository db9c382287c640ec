"""`make demo`: the budget check end to end on the embedded stack, told as a timeline.

Four users write to the bot through the webhook; the check_budget_limits schedule fires every half
hour; the notifications worker drains the queue; every message the bot sent is shown as it arrived
at the Telegram stand-in. The run also replays a duplicate schedule delivery and a duplicate SQS
delivery, to show that neither sends anything twice."""

from __future__ import annotations

import os
import time
import warnings
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
    EmbeddedPostgres,
    LocalSystem,
    environment,
    migrate_database,
    running_system,
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


def run_demo(console: Console | None = None, *, day: datetime | None = None, database_url: str | None = None,
             verbose: bool = False) -> list[Line]:
    """Runs the demo morning and prints its timeline. With no database_url it starts (and removes) an
    embedded PostgreSQL; a database given must be empty, since the demo's users would collide."""
    # As in Lambda, Powertools reads its settings when the library is first imported: set them first.
    powertools = {
        "POWERTOOLS_SERVICE_NAME": "expensebot",
        "POWERTOOLS_METRICS_NAMESPACE": "ExpenseBot",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "INFO" if verbose else "WARNING",
    }
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    with environment(powertools):
        from expensebot.observability import logger

        logger.setLevel(powertools["POWERTOOLS_LOG_LEVEL"])
        return _run(console, day=day, database_url=database_url)


def _run(console: Console | None, *, day: datetime | None, database_url: str | None) -> list[Line]:
    from expensebot.adapters.database import Database
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
    url = database_url or postgres.start()
    try:
        with _mocked_aws(), TelegramStandIn(tokens=[LOCAL_BOT_TOKEN], clock=clock.now, enforce_limits=False) as tg:
            migrate_database(url, timezone=zone_name)
            database = Database(lambda: url, timezone=zone_name)
            existing_users = database.fetch_all("SELECT count(*) AS n FROM users")[0]["n"]
            database.close()
            if existing_users:
                raise SystemExit("expensebot demo: the database already has users; give it an empty one")
            with running_system(template=template, database_url=url, telegram=tg, clock=clock,
                                parameters={"TimeZone": zone_name}) as system:
                lines = _play(system, morning, console)
                alerts = system_alert_count()
    finally:
        if not database_url:
            postgres.stop()
    _print(console, lines, morning, zone_name, time.monotonic() - started, database_url is not None, alerts)
    return lines


def system_alert_count() -> int:
    from expensebot.bootstrap import get_runtime

    rows = get_runtime().db.fetch_all(
        "SELECT count(*) AS n FROM notifications WHERE kind = 'budget_alert' AND status = 'sent'"
    )
    return int(rows[0]["n"])


def _play(system: LocalSystem, morning: datetime, console: Console) -> list[Line]:
    lines: list[Line] = []
    updates = UpdateFactory()
    names = {u.user_id: u.first_name for u in USERS}
    for user in USERS:
        system.telegram.add_chat(user.user_id, first_name=user.first_name, language_code=user.language_code)
    seen_calls = 0

    def collect_bot_messages() -> int:
        nonlocal seen_calls
        calls = system.telegram.calls[seen_calls:]
        seen_calls += len(calls)
        sent = [c for c in calls if c.method == "sendMessage" and c.status == 200]
        for call in sent:
            chat = int(call.params["chat_id"])
            lines.append(Line(call.at, f"bot → {names.get(chat, chat)}", _brief(str(call.params["text"])), "green"))
        return len(sent)

    # Everything that happens, in time order: what users type, and the job's half-hourly slots.
    happenings: list[tuple[datetime, int, FakeUser | None, str]] = [
        (morning + timedelta(minutes=minutes), 0, user, text) for minutes, user, text in SCRIPT
    ]
    slot = morning + CHECKS_EVERY
    while slot <= morning + timedelta(hours=DEMO_HOURS):
        happenings.append((slot, 1, None, ""))
        slot += CHECKS_EVERY
    shown_duplicates = False
    with console.status("running the demo…") if console.is_terminal else _nothing():
        for at, _, user, text in sorted(happenings, key=lambda h: (h[0], h[1])):
            system.clock.set(at)
            if user is not None:
                lines.append(Line(at, f"{user.first_name} → bot", text, "cyan"))
                system.post_update(updates.message(user, text, at))
                collect_bot_messages()
                continue
            outcome = system.fire_schedule(BUDGET_JOB, at)
            lines.append(Line(at, "schedule", _describe_run(outcome), "yellow"))
            messages = system.receive_raw("NotificationsQueue")
            if not messages:
                continue
            response = system.invoke_worker("NotificationsQueue", messages)
            failed = len(response["batchItemFailures"])
            lines.append(Line(at, "worker", f"notifications: {len(messages)} message(s), {failed} failed", "magenta"))
            collect_bot_messages()
            if not shown_duplicates:
                # At-least-once delivery, shown once: Scheduler delivers the slot again, SQS the batch.
                shown_duplicates = True
                again = system.fire_schedule(BUDGET_JOB, at, attempt=2)
                lines.append(Line(at, "schedule", f"the same slot delivered again (attempt 2): {again['status']}",
                                  "yellow"))
                system.invoke_worker("NotificationsQueue", messages)
                resent = collect_bot_messages()
                lines.append(Line(at, "worker", f"the same batch redelivered: {resent} message(s) re-sent",
                                  "magenta"))
            system.delete("NotificationsQueue", messages)
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


def _print(console: Console, lines: list[Line], morning: datetime, zone: str, seconds: float,
           external_db: bool, alerts: int) -> None:
    console.print()
    console.print(Text("ExpenseBot demo — the budget check, end to end", style="bold"))
    database = "PostgreSQL at --database-url" if external_db else "embedded PostgreSQL"
    console.print(f"{database}, SQS (moto), Telegram Bot API stand-in")
    console.print(f"{morning:%d %B %Y}, {zone}; check_budget_limits every 30 minutes")
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
    console.print(f"\n{alerts} budget alert(s) sent, each once; run took {seconds:.1f} s.")
