"""One contract for every `expensebot` command (expensebot_tools/console.py): exit 0 when all is well, 1 when
the command found a problem, 2 for a usage or configuration error or an unreachable service; errors in one
line; help on every option; --version; a closed pipe ends quietly; no raw log lines on a terminal."""

from __future__ import annotations

import argparse
import calendar
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from expensebot_tools.cli import build_parser

EXPENSEBOT = str(Path(sys.executable).with_name("expensebot"))
UNREACHABLE_DATABASE = "postgresql://x@127.0.0.1:1/none"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXPENSEBOT, *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})})


def every_parser(parser: argparse.ArgumentParser,
                 path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += every_parser(sub, (*path, name))
    return found


def test_every_option_and_argument_of_every_command_has_help():
    missing = [
        f"expensebot {' '.join(path)} {action.option_strings[0] if action.option_strings else action.dest}"
        for path, parser in every_parser(build_parser())
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help
    ]
    assert missing == []


def test_every_subcommand_has_help_text():
    missing = []
    for path, parser in every_parser(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {choice.dest for choice in action._choices_actions if choice.help}
                missing += [f"expensebot {' '.join(path)} {name}" for name in action.choices if name not in helped]
    assert missing == []


def test_version_names_the_package_version():
    from importlib.metadata import version

    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"expensebot {version('expensebot-serverless')}"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (("migrate", "--check", "--database-url", UNREACHABLE_DATABASE), {}, "cannot connect to PostgreSQL"),
        (("ops", "status"), {"DATABASE_URL": UNREACHABLE_DATABASE}, "cannot connect to PostgreSQL"),
        (("ops", "status"), {"APP_TIMEZONE": "Mars/Base"}, "APP_TIMEZONE: unknown time zone"),
        (("webhook", "info"), {"APP_TIMEZONE": "Mars/Base"}, "APP_TIMEZONE: unknown time zone"),
        (("demo", "--database-url", UNREACHABLE_DATABASE), {}, "cannot connect to PostgreSQL"),
        (("simulate", "--start", "2026-11-01T00:00", "--end", "2026-10-01T00:00"), {}, "is not after --start"),
        (("ops", "logs", "no_such_function"), {}, "no function 'no_such_function'"),
        (("ops", "send", "no.such_task"), {"DATABASE_URL": UNREACHABLE_DATABASE}, "no.such_task"),
    ],
    ids=["migrate-check-db-down", "ops-db-down", "ops-bad-config", "webhook-bad-config", "demo-db-down",
         "simulate-bad-window", "ops-logs-unknown", "ops-send-unknown-task"],
)
def test_a_configuration_error_or_unreachable_service_is_exit_2_in_one_line(argv, env, message):
    result = run(*argv, env=env)

    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert result.stderr.startswith(f"expensebot {argv[0]}")
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_a_usage_error_is_exit_2():
    assert run("ops", "no-such-command").returncode == 2
    assert run("bench", "--users", "many").returncode == 2


def test_a_closed_pipe_ends_quietly():
    # The reader goes away before the command writes (as `| head` does once it has its lines).
    process = subprocess.Popen([EXPENSEBOT, "ops", "tasks", "--json"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    _, err = process.communicate(timeout=120)

    assert err.decode() == ""
    assert process.returncode == 0


def test_a_simulation_that_reports_failures_exits_1(tmp_path):
    start = calendar.timegm((2026, 11, 2, 12, 0, 0))
    # A message whose chat is not an object: the webhook answers 400, which the simulation reports.
    updates = tmp_path / "updates.jsonl"
    updates.write_text(json.dumps({"update_id": 7, "message": {"message_id": 1, "date": start, "chat": "nope",
                                                               "text": "кофе 100"}}) + "\n")

    result = run("simulate", "--start", "2026-11-02T00:00", "--end", "2026-11-03T00:00", "--updates", str(updates))

    assert "webhook answered 400 to update 7" in result.stdout
    assert result.returncode == 1
