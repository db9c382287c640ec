"""`expensebot dev import-times`: the cold import of every handler module, in fresh interpreters, as Lambda's
init phase pays it."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from expensebot_tools.console import CliError
from expensebot_tools.project.template import PROJECT_ROOT, Template

_IMPORT_PROBE = """
import json, sys, time
sys.path[:0] = {extra!r}
from expensebot_tools.project.template import load_module
from pathlib import Path
from typing import Any
started = time.perf_counter()
load_module(Path({path!r}))
elapsed = time.perf_counter() - started
aiogram = any(m.split(".")[0] == "aiogram" for m in sys.modules)
matplotlib = any(m.split(".")[0] == "matplotlib" for m in sys.modules)
# What the first invocation adds: the task registry and boto3 (the SQS client is built on first use).
import expensebot.jobs, boto3
first_call = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed, "first_call_seconds": first_call, "aiogram": aiogram,
                  "matplotlib": matplotlib}}))
"""

# What the reports worker's first report adds on top: matplotlib, imported where the chart is drawn, and the
# report's fonts (cut down once per execution environment, kept in /tmp).
_FIRST_REPORT_PROBE = """
import json, sys, time
sys.path[:0] = {extra!r}
from expensebot.jobs import report_render
started = time.perf_counter()
report_render._pyplot()
print(json.dumps({{"seconds": time.perf_counter() - started}}))
"""
# The function whose task draws the monthly report's chart and PDF.
REPORTS_WORKER = "ReportsWorkerFunction"


def measure_import(module_path: Path, runs: int = 3, python: str = sys.executable) -> dict[str, float | bool]:
    """Cold import of one handler module in fresh interpreters; the fastest of `runs`. The layer's and
    the tools' folders go first on sys.path, as /opt/python does in Lambda, so any interpreter with the
    layer's requirements installed can be measured (e.g. the runtime's Python 3.13)."""
    best: dict[str, float | bool] | None = None
    paths = [str(PROJECT_ROOT / "layers" / "expensebot"), str(PROJECT_ROOT / "infra" / "tools")]
    for _ in range(runs):
        code = _IMPORT_PROBE.format(path=str(module_path), extra=paths)
        try:
            output = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
        except subprocess.CalledProcessError as exc:
            last = (exc.stderr.strip().splitlines() or ["no output"])[-1]
            raise CliError(f"{python} could not import {module_path}: {last}") from None
        result = json.loads(output.stdout.strip().splitlines()[-1])
        if best is None or result["seconds"] < best["seconds"]:
            best = result
    assert best is not None
    return best


def measure_first_report(runs: int = 3, python: str = sys.executable) -> float:
    """Seconds the reports worker's first report spends importing matplotlib and preparing its fonts; the
    fastest of `runs` fresh interpreters."""
    paths = [str(PROJECT_ROOT / "layers" / "expensebot"), str(PROJECT_ROOT / "infra" / "tools")]
    code = _FIRST_REPORT_PROBE.format(extra=paths)
    times = []
    for _ in range(runs):
        try:
            output = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
        except subprocess.CalledProcessError as exc:
            last = (exc.stderr.strip().splitlines() or ["no output"])[-1]
            raise CliError(f"{python} could not prepare the report's rendering: {last}") from None
        times.append(float(json.loads(output.stdout.strip().splitlines()[-1])["seconds"]))
    return min(times)


def cmd_import_times(args: argparse.Namespace) -> int:
    template = Template()
    rows = []
    seen: dict[Path, dict[str, float | bool]] = {}
    for function_id, spec in sorted(template.functions.items()):
        if spec.module_path not in seen:
            seen[spec.module_path] = measure_import(spec.module_path, runs=args.runs, python=args.python)
        measured = seen[spec.module_path]
        rows.append(
            {
                "function": function_id,
                "module": str(spec.module_path.relative_to(PROJECT_ROOT)),
                "import_seconds": round(float(measured["seconds"]), 3),
                "with_first_call_seconds": round(float(measured["first_call_seconds"]), 3),
                "imports_aiogram": bool(measured["aiogram"]),
                "imports_matplotlib": bool(measured["matplotlib"]),
            }
        )
    first_report = measure_first_report(runs=args.runs, python=args.python)
    for row in rows:
        if row["function"] == REPORTS_WORKER:
            row["first_report_seconds"] = round(first_report, 3)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    version = subprocess.run([args.python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    table = Table(title=f"Cold import of each handler module (best of {args.runs}, Python {version})")
    for column in ("function", "module", "import s", "+ first call s", "aiogram", "matplotlib"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(row["function"], row["module"], f"{row['import_seconds']:.3f}",
                      f"{row['with_first_call_seconds']:.3f}", "yes" if row["imports_aiogram"] else "no",
                      "yes" if row["imports_matplotlib"] else "no")
    console = Console()
    if not console.is_terminal:
        console = Console(width=130)
    console.print(table)
    console.print(f"{REPORTS_WORKER}'s first monthly report also imports matplotlib and prepares the report's "
                  f"fonts: {first_report:.3f} s, once per execution environment (no other function does).")
    return 0
