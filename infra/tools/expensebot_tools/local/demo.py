"""`make demo`: the whole system over the current month, told as a timeline of what each user received.

It runs `expensebot simulate --demo` (simulate.simulate) from the first of this month to the first of the next,
in the app's time zone, on the embedded stack: four users start the bot on the first morning, set budgets, add
recurring payments and then record a few expenses a day; every schedule of template.yaml fires at its times
(the budget check every half hour, recurring payments at 12:00, the admin report at 10:00 to the demo's admin
chat, the month-end report on the last evening). The timeline shows each day's messages: the first morning's
conversation in full, then on each later day what the jobs sent (alerts, recurring notices, reports), with
the routine replies to typed expenses counted in one line. The simulate summary and a one-line total follow.

A bot message is told apart from a reply by the notifications table: a job's message is a notification row
holding the Telegram message id it got (the stand-in numbers each chat's messages from 1, in send order)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from rich.text import Text

from expensebot_tools.console import CliError
from expensebot_tools.local.demo_world import ADMIN_CHAT_ID, USERS
from expensebot_tools.local.stack import EmbeddedPostgres, environment, migrate_database
from expensebot_tools.project.template import Template

KIND_LABELS = {
    "budget_alert": ("budget alert", "red"),
    "recurring_notice": ("recurring payment", "magenta"),
    "monthly_report": ("month-end report", "green"),
    "report": ("report", "green"),
    "admin_report": ("admin report", "yellow"),
}
REPLY = "reply"
FILE = "file"  # a photo or a document: the month-end report's chart and PDF
SEND_METHODS = ("sendMessage", "sendPhoto", "sendDocument")
# Where the demo leaves the files its users were sent (the month-end charts and PDFs), to be opened.
DEMO_FILES_DIR = Path(tempfile.gettempdir()) / "expensebot-demo-files"


@dataclass
class Line:
    at: datetime
    who: str
    text: str
    style: str = ""
    kind: str = ""  # a notification kind, REPLY for a bot's answer, "" for what a user typed


@dataclass
class DemoResult:
    lines: list[Line]
    sent_by_kind: Counter[str]
    report: Any  # simulate.SimulationReport
    seconds: float


def month_window(moment: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The calendar month holding the moment, in the zone: its first midnight and the next month's."""
    local = moment.astimezone(zone)
    start = datetime(local.year, local.month, 1, tzinfo=zone)
    end = datetime(local.year + (local.month == 12), local.month % 12 + 1, 1, tzinfo=zone)
    return start, end


def run_demo(console: Console | None = None, *, day: datetime | None = None, database_url: str | None = None,
             verbose: bool = False) -> DemoResult:
    """Simulates the month holding `day` (default: now) and prints its timeline. With no database_url it
    starts (and removes) an embedded PostgreSQL; a database given must have no users, since the demo's
    users would collide."""
    from expensebot_tools.local.simulate import template_zone_name

    console = console or Console()
    if not console.is_terminal:  # piped or captured: wide enough for the tables, as simulate prints them
        console = Console(width=120)
    started = time.monotonic()
    zone_name = template_zone_name(Template())
    zone = ZoneInfo(zone_name)
    start, end = month_window(day or datetime.now(zone), zone)
    # As in Lambda, Powertools reads its settings when the library is first imported: set them first.
    settings = {
        "POWERTOOLS_SERVICE_NAME": "expensebot",
        "POWERTOOLS_METRICS_NAMESPACE": "ExpenseBot",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "INFO" if verbose else "WARNING",
        "ADMIN_CHAT_IDS": os.environ.get("ADMIN_CHAT_IDS") or str(ADMIN_CHAT_ID),
    }
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    with environment(settings), tempfile.TemporaryDirectory(prefix="expensebot-demo-") as scratch:
        from expensebot.observability import logger

        logger.setLevel(settings["POWERTOOLS_LOG_LEVEL"])
        outbox = Path(scratch) / "outbox.jsonl"
        postgres = EmbeddedPostgres()
        url = database_url or postgres.start()
        try:
            _require_no_users(url, zone_name)
            report, kinds = _simulate(start, end, zone_name, outbox, url, console)
        finally:
            if not database_url:
                postgres.stop()
        keep_files(outbox, DEMO_FILES_DIR)
        calls = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = timeline(calls, kinds, start, end, zone, admin_chats=_admin_chats(settings["ADMIN_CHAT_IDS"]))
    sent = Counter(line.kind for line in lines if line.kind and line.kind not in (REPLY, FILE))
    result = DemoResult(lines=lines, sent_by_kind=sent, report=report, seconds=time.monotonic() - started)
    _print(console, result, start, zone_name, external_db=database_url is not None)
    return result


def _admin_chats(value: str) -> set[int]:
    return {int(part) for part in value.replace(",", " ").split() if part.lstrip("-").isdigit()}


def _require_no_users(url: str, zone_name: str) -> None:
    from expensebot.adapters.database import Database

    migrate_database(url, timezone=zone_name)
    database = Database(lambda: url, timezone=zone_name)
    try:
        existing = database.fetch_all("SELECT count(*) AS n FROM users")[0]["n"]
    finally:
        database.close()
    if existing:
        raise CliError("the database already has users; give it an empty one")


def _simulate(start: datetime, end: datetime, zone_name: str, outbox: Path, url: str,
              console: Console) -> tuple[Any, dict[tuple[int, int], str]]:
    """The month through simulate; then which (chat, message id) each job's notification went out as."""
    from expensebot.adapters.database import Database
    from expensebot_tools.local.simulate import simulate

    report = simulate(start=start, end=end, zone_name=zone_name, updates=[], demo=True, outbox=outbox,
                      database_url=url, console=Console(stderr=True))
    database = Database(lambda: url, timezone=zone_name)
    try:
        rows = database.fetch_all("SELECT chat_id, telegram_message_id, kind FROM notifications "
                                  "WHERE status = 'sent' AND telegram_message_id IS NOT NULL")
    finally:
        database.close()
    return report, {(int(r["chat_id"]), int(r["telegram_message_id"])): r["kind"] for r in rows}


def timeline(calls: list[dict[str, Any]], kinds: dict[tuple[int, int], str], start: datetime, end: datetime,
             zone: ZoneInfo, *, admin_chats: set[int]) -> list[Line]:
    """What the users typed (the demo's updates) and every message the bot sent (the outbox), in time order."""
    from expensebot_tools.local.simulate import demo_updates

    names: dict[int, str] = {user.user_id: user.first_name for user in USERS}
    names.update({chat: "admins" for chat in admin_chats})
    lines = []
    for happening in demo_updates(start, end, zone)[0]:
        message = (happening.update or {}).get("message", {})
        lines.append(Line(happening.at, f"{names.get(message['from']['id'], '?')} → bot", message.get("text", ""),
                          "cyan"))
    sent_per_chat: Counter[int] = Counter()
    for call in calls:
        if call.get("method") not in SEND_METHODS or call.get("status") != 200:
            continue
        chat = int(call["chat_id"])
        # The stand-in numbers a chat's messages, photos and documents alike, as Telegram does.
        sent_per_chat[chat] += 1
        kind = kinds.get((chat, sent_per_chat[chat]), REPLY)
        style = KIND_LABELS.get(kind, (kind, "green"))[1] if kind != REPLY else "green"
        at = datetime.fromisoformat(call["at"]).astimezone(zone)
        if call["method"] == "sendMessage":
            lines.append(Line(at, f"bot → {names.get(chat, chat)}", str(call.get("text", "")), style, kind))
            continue
        file = call.get("photo") or call.get("document") or {}
        label = "chart" if call["method"] == "sendPhoto" else "document"
        lines.append(Line(at, f"bot → {names.get(chat, chat)}",
                          f"{label}: {file.get('path') or file.get('file_name', '?')} ({_size(file.get('file_size'))})",
                          style, FILE))
    # Stable sort: at one instant, the user's message stays before the bot's answer.
    return sorted(lines, key=lambda line: line.at)


def _size(size: object) -> str:
    return f"{int(size) / 1024:.0f} KB" if isinstance(size, int) else "?"


def keep_files(outbox: Path, target: Path) -> None:
    """The files the stand-in saved beside the outbox, moved to `target` (emptied first), with the outbox
    lines' paths rewritten to point there: the scratch directory goes when the demo ends, the files stay
    to be looked at."""
    saved = outbox.with_name(outbox.name + ".files")
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if saved.exists():
        shutil.copytree(saved, target)
    text = outbox.read_text(encoding="utf-8") if outbox.exists() else ""
    outbox.write_text(text.replace(json.dumps(str(saved))[1:-1], json.dumps(str(target))[1:-1]), encoding="utf-8")




def brief(text: str, max_lines: int = 2) -> str:
    """The first lines of a message: enough to see what it is."""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept) if len(kept) <= max_lines else "\n".join(kept[:max_lines]) + " …"


def _print(console: Console, result: DemoResult, start: datetime, zone_name: str, *, external_db: bool) -> None:
    from expensebot_tools.local.simulate import print_summary

    console.print()
    console.print(Text(f"ExpenseBot demo — {start:%B %Y}, the whole system on this machine", style="bold"))
    database = "PostgreSQL at --database-url" if external_db else "embedded PostgreSQL"
    console.print(f"{database}, SQS (moto), Telegram Bot API stand-in; {zone_name}; every schedule of template.yaml")
    console.print("Four users start the bot on the 1st, then record a few expenses a day. Each day below shows "
                  "what the bot sent; routine replies to expenses are counted, not shown.", style="dim")
    days: dict[datetime, list[Line]] = {}
    for line in result.lines:
        days.setdefault(line.at.replace(hour=0, minute=0, second=0, microsecond=0), []).append(line)
    first_day = min(days) if days else None
    for day, lines in days.items():
        shown = lines if day == first_day else _condensed(lines)
        if not shown:
            continue
        console.print()
        console.print(Text(f"{day:%A} {day.day} {day:%B}", style="bold underline"))
        table = Table(show_header=False, box=None, padding=(0, 1), expand=False)
        table.add_column("time", no_wrap=True, style="dim")
        table.add_column("who", no_wrap=True)
        table.add_column("what")
        previous = ""
        for line in shown:
            stamp = f"{line.at:%H:%M}"
            table.add_row(stamp if stamp != previous else "", Text(line.who, style=line.style), _what(line, day))
            previous = stamp
        console.print(table)
    console.print()
    print_summary(result.report, console, zone_name)
    console.print()
    console.print(total_line(result), soft_wrap=True)


def _what(line: Line, day: datetime) -> Text:
    """A message's first lines, after its kind; a daily admin report in one line after the first day's."""
    if not line.kind or line.kind == REPLY:
        return Text(brief(line.text))
    if line.kind == FILE:
        return Text(line.text, style="dim")
    label, style = KIND_LABELS.get(line.kind, (line.kind, "green"))
    short = line.kind == "admin_report" and day.day > 1
    return Text.assemble((f"{label}: ", f"bold {style}"), brief(line.text, max_lines=1 if short else 2))


def _condensed(lines: list[Line]) -> list[Line]:
    """A later day: the jobs' messages in full, the users' expenses and their replies as one line."""
    typed = [line for line in lines if not line.kind]
    replies = [line for line in lines if line.kind == REPLY]
    kept = [line for line in lines if line.kind and line.kind != REPLY]  # files included
    if typed:
        who = ", ".join(dict.fromkeys(line.who.removesuffix(" → bot") for line in typed))
        answered = "the bot answered each" if len(replies) == len(typed) else f"{len(replies)} bot replies"
        kept.append(Line(typed[0].at, "users", f"{len(typed)} expenses typed by {who}; {answered}", "dim"))
    return sorted(kept, key=lambda line: line.at)


def total_line(result: DemoResult) -> str:
    counts = result.sent_by_kind
    parts = [f"{counts.get(kind, 0)} {label}(s)" for kind, (label, _) in KIND_LABELS.items()
             if kind != "report" or counts.get(kind)]
    replies = sum(1 for line in result.lines if line.kind == REPLY)
    files = sum(1 for line in result.lines if line.kind == FILE)
    return (f"Sent {', '.join(parts)}, {files} file(s) (the reports' charts and PDFs, kept in {DEMO_FILES_DIR}) "
            f"and {replies} replies; the demo took {result.seconds:.1f} s.")
