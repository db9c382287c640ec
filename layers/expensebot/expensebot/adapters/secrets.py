"""Secrets: a plain value (local runs, tests, `sam local invoke --env-vars`) or, in AWS, the name of a
Secrets Manager secret read through Powertools Parameters, cached across warm invocations."""

from __future__ import annotations

import json
from typing import Any

from pydantic import SecretStr

from expensebot.errors import ConfigurationError

SECRET_CACHE_SECONDS = 300


def resolve_secret(
    value: SecretStr | None, secret_name: str | None, *, what: str, env: str, name_env: str
) -> str:
    if value is not None and value.get_secret_value():
        return value.get_secret_value()
    if secret_name:
        return _fetch(secret_name, what=what)
    raise ConfigurationError(f"{what} is not configured: set {env}, or {name_env} in AWS")


def resolve_json_secret(secret_name: str, *, what: str) -> dict[str, Any]:
    raw = _fetch(secret_name, what=what)
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{what} secret {secret_name!r} is not JSON") from exc
    if not isinstance(parsed, dict):
        raise ConfigurationError(f"{what} secret {secret_name!r} is not a JSON object")
    return parsed


def _fetch(secret_name: str, *, what: str) -> str:
    # Imported here: Parameters pulls in boto3, which the webhook's cold path should pay only when needed.
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(secret_name, max_age=SECRET_CACHE_SECONDS)
    except parameters.exceptions.GetParameterError as exc:
        raise ConfigurationError(f"cannot read the {what} secret {secret_name!r}: {exc}") from exc
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"the {what} secret {secret_name!r} is empty")
    return value.strip()
