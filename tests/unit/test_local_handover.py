"""The hand-over files of `expensebot local up`: what a shell gets from `source .expensebot/local.env`."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from expensebot_tools.local.control_plane import env_file_text, handed_over, handover_variables


def sourced(env_file: Path, *names: str) -> dict[str, str]:
    """The variables as bash sees them after `source FILE` (with a clean environment)."""
    script = f"source {env_file} && " + " && ".join(f'printf "%s\\0" "${{{name}}}"' for name in names)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, env={}).stdout
    return dict(zip(names, out.split("\0")[:-1], strict=True))


def test_every_value_reaches_the_shell_unchanged_whatever_it_contains(tmp_path):
    awkward = "it's \"quoted\" $HOME `date` ; rm -rf / #"
    env_file = tmp_path / "local.env"
    env_file.write_text(env_file_text({"ADMIN_CHAT_IDS": "1, -100200", "WEBHOOK_SECRET": awkward},
                                      started=datetime(2026, 12, 1, tzinfo=UTC)))
    assert sourced(env_file, "ADMIN_CHAT_IDS", "WEBHOOK_SECRET") == {"ADMIN_CHAT_IDS": "1, -100200",
                                                                     "WEBHOOK_SECRET": awkward}


def test_the_functions_settings_are_handed_over_but_not_their_own_runtime_switches(tmp_path):
    variables = handover_variables(
        {"QUEUE_URL_DEFAULT": "http://127.0.0.1:5000/1/q", "DATABASE_URL": "postgresql://socket",
         "SQS_ENDPOINT_URL": "", "POWERTOOLS_LOG_LEVEL": "WARNING", "APP_TIMEZONE": "Europe/Moscow"},
        database_url="postgresql://postgres@127.0.0.1:5433/postgres", resources_file=tmp_path / "resources.json",
        aws={"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"})
    assert variables == {
        "APP_TIMEZONE": "Europe/Moscow", "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5433/postgres",  # over TCP, not the functions' socket
        "EXPENSEBOT_RESOURCES_FILE": str(tmp_path / "resources.json"), "QUEUE_URL_DEFAULT": "http://127.0.0.1:5000/1/q"}


def test_both_files_exist_while_the_stack_runs_and_are_gone_after(tmp_path):
    directory = tmp_path / ".expensebot"
    with handed_over(directory, {"APP_TIMEZONE": "UTC"}, {"DefaultQueue": "http://q"}) as env_file:
        assert env_file == directory / "local.env"
        assert json.loads((directory / "resources.json").read_text()) == {"DefaultQueue": "http://q"}
        assert sourced(env_file, "APP_TIMEZONE") == {"APP_TIMEZONE": "UTC"}
    assert list(directory.iterdir()) == []
