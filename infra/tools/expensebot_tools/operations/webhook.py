"""`expensebot webhook set --url URL | info | delete`: Telegram's webhook registration, done with the same
bot token and webhook secret the webhook function reads (the plain variables, or the Secrets Manager names
the template gives), through the project's urllib3 Bot API client.

- `set` registers the URL with the secret token Telegram then sends in X-Telegram-Bot-Api-Secret-Token,
  and only the update types the bot handles.
- `info` shows getWebhookInfo: the URL, the updates waiting (`pending_update_count`), the last delivery
  error and when it happened; `--json` prints Telegram's answer as it is.
- `delete` removes the webhook; `--drop-pending-updates` also discards what is waiting.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from expensebot_tools.console import CliError

# Telegram's rule for secret_token.
SECRET_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _runtime() -> Any:
    from expensebot.bootstrap import build_runtime
    from expensebot_tools.console import load_settings

    return build_runtime(load_settings())


def cmd_set(args: argparse.Namespace) -> int:
    from expensebot.bot import HANDLED_UPDATE_TYPES

    runtime = _runtime()
    secret = runtime.webhook_secret()
    if not SECRET_TOKEN_PATTERN.fullmatch(secret):
        raise CliError(
            "the webhook secret may only hold A-Z, a-z, 0-9, _ and - (1 to 256 "
            "characters), as Telegram requires; choose another WEBHOOK_SECRET (or secret value)"
        )
    runtime.telegram.call(
        "setWebhook",
        {
            "url": args.url,
            "secret_token": secret,
            "allowed_updates": list(HANDLED_UPDATE_TYPES),
            "max_connections": args.max_connections,
            "drop_pending_updates": args.drop_pending_updates or None,
        },
    )
    print(f"webhook set: {args.url} (updates: {', '.join(HANDLED_UPDATE_TYPES)}; secret token sent)")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    _runtime().telegram.call("deleteWebhook", {"drop_pending_updates": args.drop_pending_updates or None})
    print("webhook deleted" + (", pending updates dropped" if args.drop_pending_updates else ""))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    runtime = _runtime()
    info: dict[str, Any] = runtime.telegram.call("getWebhookInfo")
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return 0
    _print_info(info, runtime.settings.tz)
    return 0


def info_rows(info: dict[str, Any], tz: ZoneInfo) -> list[tuple[str, str]]:
    """getWebhookInfo as (field, value) lines a person reads; Telegram omits the fields that are unset."""

    def when(key: str) -> str:
        stamp = info.get(key)
        return datetime.fromtimestamp(stamp, UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z") if stamp else ""

    last_error = "none"
    if info.get("last_error_message"):
        last_error = f"{when('last_error_date')}: {info['last_error_message']}"
    allowed = info.get("allowed_updates")
    return [
        ("url", info.get("url") or "(no webhook: Telegram keeps updates for getUpdates)"),
        ("pending updates", str(info.get("pending_update_count", 0))),
        ("last error", last_error),
        ("last synchronization error", when("last_synchronization_error_date") or "none"),
        ("allowed updates", ", ".join(allowed) if allowed else "all but chat_member, message_reaction(_count)"),
        ("max connections", str(info.get("max_connections", "")) or "-"),
        ("IP address", info.get("ip_address") or "-"),
        ("custom certificate", "yes" if info.get("has_custom_certificate") else "no"),
    ]


def _print_info(info: dict[str, Any], tz: ZoneInfo) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Telegram webhook (getWebhookInfo)", show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value")
    for field, value in info_rows(info, tz):
        table.add_row(field, value)
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    console.print(table)


def add_parser(commands: Any) -> None:
    """Registers `expensebot webhook ...` on the CLI's subcommands."""
    webhook = commands.add_parser("webhook", help="register, inspect or delete the Telegram webhook")
    actions = webhook.add_subparsers(dest="webhook_command", required=True)

    set_ = actions.add_parser("set", help="register the webhook URL with the secret token and update types")
    set_.add_argument("--url", required=True, help="the stack's WebhookUrl output (https://…/webhook)")
    set_.add_argument("--max-connections", type=int, default=40,
                      help="Telegram's simultaneous connections to the webhook (1-100, default 40)")
    set_.add_argument("--drop-pending-updates", action="store_true", help="discard the updates waiting")
    set_.set_defaults(func=cmd_set)

    info = actions.add_parser("info", help="Telegram's getWebhookInfo: URL, pending updates, last error")
    info.add_argument("--json", action="store_true", help="Telegram's answer as JSON")
    info.set_defaults(func=cmd_info)

    delete = actions.add_parser("delete", help="remove the webhook")
    delete.add_argument("--drop-pending-updates", action="store_true", help="discard the updates waiting")
    delete.set_defaults(func=cmd_delete)
