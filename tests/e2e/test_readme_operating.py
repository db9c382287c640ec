"""The README's "Operating it" walkthrough, line by line, against a freshly started `expensebot local up`, in a
shell that sourced the env file it wrote: each command exits 0 and prints no raw log line. What the README
shows an operator is what works."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_local_up import Running, free_port

PROJECT = Path(__file__).resolve().parents[2]
README = PROJECT / "README.md"
EXPENSEBOT = str(Path(sys.executable).with_name("expensebot"))
# A line of the functions' JSON logs (Powertools) or of their metrics (EMF), which must never reach a terminal.
RAW_LOG_LINE = re.compile(r'^\s*\{.*"(level|_aws)"\s*:', re.M)


def walkthrough() -> list[str]:
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- ops-walkthrough:start -->", 1)[1].split("<!-- ops-walkthrough:end -->", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip() and not line.startswith(("```", "#"))]


def test_the_walkthrough_sources_the_env_file_and_runs_ops_commands():
    lines = walkthrough()
    assert lines[0] == "source .expensebot/local.env"
    commands = [line for line in lines[1:] if line.startswith("expensebot ")]
    assert len(commands) >= 15
    # Every ops command the README's table names appears in the walkthrough.
    for command in ("doctor", "tasks", "queues", "status", "schedules", "send", "run", "history", "dlq", "logs",
                    "dashboard"):
        assert any(line.startswith(f"expensebot ops {command}") for line in commands), command


@pytest.fixture(scope="module")
def local_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh `local up` whose hand-over lands in a scratch copy of `.expensebot/`; yields the folder the
    walkthrough runs in (its `.expensebot/` is that hand-over)."""
    workdir = tmp_path_factory.mktemp("operator")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "QUEUE_URL_", "AWS_", "TELEGRAM_",
                                                                     "EXPENSEBOT_", "DEAD_LETTER_"))}
    env.update(APP_TIMEZONE="Europe/Moscow", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [EXPENSEBOT, "local", "up", "--port", str(free_port()), "--aws-port", str(free_port()), "--telegram-port",
         str(free_port()), "--outbox", str(workdir / "outbox.jsonl"), "--env-dir", str(workdir / ".expensebot")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    running = Running(process)
    try:
        running.wait_for_line("other terminal:", timeout=120)
        yield workdir
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def operator_shell(workdir: Path) -> dict[str, str]:
    """A new terminal: nothing of this test's own configuration, the project's virtual environment on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "QUEUE_URL_", "AWS_", "TELEGRAM_",
                                                                     "EXPENSEBOT_", "DEAD_LETTER_", "APP_"))}
    env["PATH"] = f"{Path(EXPENSEBOT).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.parametrize("line", [line for line in walkthrough() if line.startswith("expensebot ")])
def test_each_walkthrough_command_works_against_local_up(local_up: Path, line: str):
    shell = f"set -e; source .expensebot/local.env; {line}"
    result = subprocess.run(["bash", "-c", shell], cwd=local_up, capture_output=True, text=True, timeout=180,
                            env=operator_shell(local_up))

    assert result.returncode == 0, f"{line}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert not RAW_LOG_LINE.search(result.stdout + result.stderr), result.stdout + result.stderr
