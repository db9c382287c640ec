"""`expensebot dev import-times`: the cold import of every handler module, in fresh interpreters, as Lambda's
init phase pays it, against the cold-start goal of the job and worker functions."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from expensebot_tools.console import EXIT_OK, EXIT_PROBLEM, CliError
from expensebot_tools.project.template import PROJECT_ROOT, Resolver, Template, UnresolvedReference

# The goal of every function that imports its handler at each cold start (all but SnapStart's), with tracing
# off (the template's default): the X-Ray SDK alone used to cost about 0.2 s of it.
GOAL_SECONDS = 0.150
# The venv `make import-times` builds with Python 3.13, Lambda's runtime: only the layer's requirements,
# the webhook's and boto3, as in Lambda. Measured too whenever it exists.
LAMBDA_VENV_PYTHON = PROJECT_ROOT / ".venv-lambda" / "bin" / "python"

# Self-contained, so the measured interpreter needs nothing but what Lambda has: the handler is loaded by
# path, as Lambda's bootstrap does, with the layer's folder first on sys.path as /opt/python is.
_IMPORT_PROBE = """
import importlib.util, json, sys, time
started = time.perf_counter()
sys.path[:0] = [{layer!r}, {folder!r}]
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
elapsed = time.perf_counter() - started
loaded = {{name.split(".")[0] for name in sys.modules}}
found = {{"aiogram": "aiogram" in loaded, "matplotlib": "matplotlib" in loaded,
          "aws_xray_sdk": "aws_xray_sdk" in loaded, "boto3": "boto3" in loaded}}
# What the first invocation adds: the runtime's settings and adapters (built on first use, connecting later),
# the task and job registry, boto3 (the SQS client is built on first use) and Powertools' batch processor.
from expensebot.bootstrap import build_runtime
build_runtime()
import expensebot.jobs, boto3, aws_lambda_powertools.utilities.batch
first_call = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed, "first_call_seconds": first_call, **found,
                  "python": sys.version.split()[0]}}))
"""

# What the reports worker's first report adds on top: matplotlib, imported where the chart is drawn, and the
# report's fonts (cut down once per execution environment, kept in /tmp).
_FIRST_REPORT_PROBE = """
import json, sys, time
sys.path[:0] = [{layer!r}]
from expensebot.jobs import report_render
started = time.perf_counter()
report_render._pyplot()
print(json.dumps({{"seconds": time.perf_counter() - started}}))
"""
# The function whose task draws the monthly report's chart and PDF.
REPORTS_WORKER = "ReportsWorkerFunction"
_LAYER = str(PROJECT_ROOT / "layers" / "expensebot")


def lambda_environment(template: Template | None = None, *, tracing: str = "PassThrough") -> dict[str, str]:
    """The variables the template's Globals give every function, with the parameters' defaults and the given
    Tracing; those naming a resource (queue URLs, secrets) are left out, since no import reads them."""
    template = template or Template()
    resolver = Resolver(parameters={**template.parameter_defaults(), "Tracing": tracing},
                        conditions=template.raw.get("Conditions", {}))
    found: dict[str, str] = {}
    for name, value in template.globals.get("Environment", {}).get("Variables", {}).items():
        try:
            resolved = resolver.resolve(value)
        except UnresolvedReference:
            continue
        if resolved is not Resolver.NO_VALUE:
            found[name] = str(resolved)
    return found


def _probe_environment() -> dict[str, str]:
    # The template's environment with tracing off, in place of whatever this shell sets the application's
    # variables to; PYTHONPATH goes too, so the layer's code is the one on the probe's sys.path.
    template = Template()
    declared = set(template.globals.get("Environment", {}).get("Variables", {}))
    for function_id in template.functions:
        declared |= set(template.own_environment(function_id))
    kept = {name: value for name, value in os.environ.items() if name not in declared and name != "PYTHONPATH"}
    return {**kept, **lambda_environment(template)}


def measure_import(module_path: Path, runs: int = 3, python: str = sys.executable) -> dict[str, Any]:
    """Cold import of one handler module in fresh interpreters, with the template's environment and tracing
    off; the fastest of `runs`. Any interpreter with the layer's requirements can be measured (e.g. the
    runtime's Python 3.13)."""
    best: dict[str, Any] | None = None
    code = _IMPORT_PROBE.format(layer=_LAYER, folder=str(module_path.parent), path=str(module_path))
    _compile_layer(python)
    for _ in range(runs):
        try:
            output = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True,
                                    env=_probe_environment(), cwd=module_path.parent)
        except (OSError, subprocess.CalledProcessError) as exc:
            stderr = getattr(exc, "stderr", None) or str(exc)
            last = (stderr.strip().splitlines() or ["no output"])[-1]
            raise CliError(f"{python} could not import {module_path}: {last}") from None
        result = json.loads(output.stdout.strip().splitlines()[-1])
        if best is None or result["seconds"] < best["seconds"]:
            best = result
    assert best is not None
    return best


def _compile_layer(python: str) -> None:
    """Byte-compiles the layer's own modules for `python` first, as pip did its dependencies, so every run
    imports bytecode: an edited module, or an interpreter that never wrote its bytecode here
    (PYTHONDONTWRITEBYTECODE), would otherwise be compiled anew in each run and measured with it. (The built
    layer ships no bytecode at all: see the README's cold-start notes.)"""
    subprocess.run([python, "-m", "compileall", "-q", _LAYER], capture_output=True, check=False)


def measure_first_report(runs: int = 3, python: str = sys.executable) -> float:
    """Seconds the reports worker's first report spends importing matplotlib and preparing its fonts; the
    fastest of `runs` fresh interpreters."""
    code = _FIRST_REPORT_PROBE.format(layer=_LAYER)
    times = []
    for _ in range(runs):
        try:
            output = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
        except subprocess.CalledProcessError as exc:
            last = (exc.stderr.strip().splitlines() or ["no output"])[-1]
            raise CliError(f"{python} could not prepare the report's rendering: {last}") from None
        times.append(float(json.loads(output.stdout.strip().splitlines()[-1])["seconds"]))
    return min(times)


def _goal(function_id: str, template: Template, seconds: float, xray: bool) -> str:
    if template.functions[function_id].properties.get("SnapStart"):
        return "not held (SnapStart)"
    return "pass" if seconds <= GOAL_SECONDS and not xray else "FAIL"


def measure_rows(template: Template, python: str, runs: int) -> list[dict[str, Any]]:
    rows = []
    seen: dict[Path, dict[str, Any]] = {}
    for function_id, spec in sorted(template.functions.items()):
        if spec.module_path not in seen:
            seen[spec.module_path] = measure_import(spec.module_path, runs=runs, python=python)
        measured = seen[spec.module_path]
        rows.append({
            "function": function_id,
            "module": str(spec.module_path.relative_to(PROJECT_ROOT)),
            "python": measured["python"],
            "import_seconds": round(float(measured["seconds"]), 3),
            "with_first_call_seconds": round(float(measured["first_call_seconds"]), 3),
            "imports_aiogram": bool(measured["aiogram"]),
            "imports_matplotlib": bool(measured["matplotlib"]),
            "imports_xray_sdk": bool(measured["aws_xray_sdk"]),
            "imports_boto3": bool(measured["boto3"]),
            "goal_seconds": GOAL_SECONDS,
            "goal": _goal(function_id, template, float(measured["seconds"]), bool(measured["aws_xray_sdk"])),
        })
    first_report = measure_first_report(runs=runs, python=python)
    for row in rows:
        if row["function"] == REPORTS_WORKER:
            row["first_report_seconds"] = round(first_report, 3)
    return rows


def _interpreters(given: list[str] | None) -> list[str]:
    if given:
        return given
    found = [sys.executable]
    if LAMBDA_VENV_PYTHON.exists() and LAMBDA_VENV_PYTHON.resolve() != Path(sys.executable).resolve():
        found.append(str(LAMBDA_VENV_PYTHON))
    return found


def _print_table(rows: list[dict[str, Any]], runs: int) -> None:
    yes_no = {True: "yes", False: "no"}
    table = Table(title=f"Cold import of each handler module, tracing off (best of {runs}, Python "
                        f"{rows[0]['python']})")
    for column in ("function", "module", "import s", "+ first call s", "X-Ray SDK", "boto3", "aiogram",
                   "matplotlib", f"goal ≤ {GOAL_SECONDS:.3f} s"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(row["function"], row["module"], f"{row['import_seconds']:.3f}",
                      f"{row['with_first_call_seconds']:.3f}", yes_no[row["imports_xray_sdk"]],
                      yes_no[row["imports_boto3"]], yes_no[row["imports_aiogram"]],
                      yes_no[row["imports_matplotlib"]], row["goal"])
    console = Console()
    if not console.is_terminal:
        console = Console(width=170)
    console.print(table)
    first_report = next(row["first_report_seconds"] for row in rows if "first_report_seconds" in row)
    console.print(f"{REPORTS_WORKER}'s first monthly report also imports matplotlib and prepares the report's "
                  f"fonts: {first_report:.3f} s, once per execution environment (no other function does).")


def cmd_import_times(args: argparse.Namespace) -> int:
    template = Template()
    rows = [row for python in _interpreters(args.python) for row in measure_rows(template, python, args.runs)]
    failed = [row for row in rows if row["goal"] == "FAIL"]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_PROBLEM if failed else EXIT_OK
    for version in dict.fromkeys(row["python"] for row in rows):
        _print_table([row for row in rows if row["python"] == version], args.runs)
    print(f"Goal: the job and worker handlers import in at most {GOAL_SECONDS:.3f} s with tracing off, without the "
          "X-Ray SDK. The webhook is not held to it: SnapStart restores it from a snapshot taken after its import.")
    if not any(row["python"].startswith("3.13.") for row in rows):
        print("Python 3.13, Lambda's runtime, was not measured: `make import-times` builds .venv-lambda with it.")
    if failed:
        # One line per handler module and interpreter: the functions sharing a module share its import.
        missed: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in failed:
            missed.setdefault((row["module"], row["python"]), []).append(row)
        for (module, python), same in missed.items():
            print(f"Missed: {module} on Python {python}, {same[0]['import_seconds']:.3f} s"
                  + (" with the X-Ray SDK" if same[0]["imports_xray_sdk"] else "")
                  + f" ({', '.join(row['function'] for row in same)})")
        return EXIT_PROBLEM
    print("Every job and worker function meets it" + (" on Python " + ", ".join(dict.fromkeys(
        row["python"] for row in rows)) if rows else "") + ".")
    return EXIT_OK
