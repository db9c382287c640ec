"""What importing a job or worker handler loads, in a fresh interpreter with the template's environment, as in
Lambda (LAMBDA_TASK_ROOT set): with tracing off (the template's default), neither the X-Ray SDK nor boto3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from expensebot_tools.project.import_times import lambda_environment
from expensebot_tools.project.template import PROJECT_ROOT, Template

LAYER = PROJECT_ROOT / "layers" / "expensebot"

# Loads the handler by path as Lambda's bootstrap does, then says which top-level packages are loaded.
_PROBE = """
import importlib.util, json, sys
sys.path[:0] = [{layer!r}, {folder!r}]
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps({{"modules": sorted(sys.modules), "handler": module.lambda_handler.__name__}}))
"""


def _handler_modules() -> list[Path]:
    template = Template()
    # The webhook is restored by SnapStart, not imported at each cold start.
    return sorted({spec.module_path for spec in template.functions.values() if "SnapStart" not in spec.properties})


def _loaded_by_import(module_path: Path, *, tracing: str) -> set[str]:
    env = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG")}
    env.update(lambda_environment(tracing=tracing), LAMBDA_TASK_ROOT=str(module_path.parent),
               AWS_LAMBDA_FUNCTION_NAME="cold-start-test", AWS_REGION="us-east-1")
    code = _PROBE.format(layer=str(LAYER), folder=str(module_path.parent), path=str(module_path))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            cwd=module_path.parent, timeout=120)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["handler"] == "lambda_handler"
    return set(probe["modules"])


def test_the_job_and_worker_handlers_are_the_ones_held_to_the_goal():
    assert [path.relative_to(PROJECT_ROOT).as_posix() for path in _handler_modules()] == [
        "functions/scheduled_job/app.py", "functions/worker/app.py"]


@pytest.mark.parametrize("module_path", _handler_modules(), ids=lambda path: path.parent.name)
def test_with_tracing_off_importing_a_handler_loads_neither_x_ray_nor_boto3(module_path: Path):
    assert lambda_environment(tracing="PassThrough")["POWERTOOLS_TRACE_DISABLED"] == "true"
    loaded = _loaded_by_import(module_path, tracing="PassThrough")
    assert "aws_lambda_powertools.logging" in loaded  # the probe did import the handler and its logger
    assert not {name for name in loaded if name.split(".")[0] == "aws_xray_sdk"}
    # boto3 and botocore's clients come with the first message to send (Powertools itself imports only
    # botocore's package, to tag the clients it makes).
    assert "boto3" not in loaded
    assert not {"botocore.session", "botocore.client"} & loaded
    # Neither do the settings model nor the drivers: the runtime imports them when it is built.
    assert not {"pydantic_settings", "psycopg2"} & {name.split(".")[0] for name in loaded}


@pytest.mark.parametrize("module_path", _handler_modules(), ids=lambda path: path.parent.name)
def test_with_tracing_active_the_handler_gets_powertools_tracer_and_the_x_ray_sdk(module_path: Path):
    assert lambda_environment(tracing="Active")["POWERTOOLS_TRACE_DISABLED"] == "false"
    loaded = _loaded_by_import(module_path, tracing="Active")
    assert "aws_xray_sdk.core" in loaded
