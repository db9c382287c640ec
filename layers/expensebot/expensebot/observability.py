"""Powertools logger, metrics and tracer, set up once for every function. Service name, log level,
metrics namespace and whether tracing is on come from the POWERTOOLS_* variables the template sets."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.shared.functions import strtobool

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

logger = Logger()
# The namespace is fixed here, not only by the environment: Powertools reads it when this module is
# imported, and a long batch flushes metrics mid-invocation (every 100 values), which fails without one.
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "ExpenseBot"
metrics = Metrics(namespace=METRICS_NAMESPACE)

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def tracing_enabled() -> bool:
    """Whether Powertools' Tracer would trace: POWERTOOLS_TRACE_DISABLED (the template's Tracing parameter) is
    not true, and this runs in Lambda, not in `sam local` (Powertools' own rule, Tracer._is_tracer_disabled)."""
    if strtobool(os.environ.get("POWERTOOLS_TRACE_DISABLED", "false")):
        return False
    return bool(os.environ.get("LAMBDA_TASK_ROOT")) and not os.environ.get("AWS_SAM_LOCAL")


class TracingOff:
    """What the handlers' decorators get when tracing is off. A disabled Powertools Tracer would do the same
    (nothing), but creating one imports the X-Ray SDK and, through it, botocore: about 0.2 s of every cold
    start (`expensebot dev import-times`)."""

    disabled = True

    def capture_lambda_handler(self, lambda_handler: _Handler | None = None, capture_response: bool | None = None,
                               capture_error: bool | None = None) -> Any:
        if lambda_handler is None:  # used as @tracer.capture_lambda_handler(capture_response=False)
            return lambda handler: handler
        return lambda_handler

    def capture_method(self, method: _Handler | None = None, capture_response: bool | None = None,
                       capture_error: bool | None = None) -> Any:
        if method is None:
            return lambda function: function
        return method

    def put_annotation(self, key: str, value: str | float | bool) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        return None


def _tracer() -> Tracer | TracingOff:
    if not tracing_enabled():
        return TracingOff()
    from aws_lambda_powertools import Tracer

    # Created at import, as Powertools asks: it patches botocore and psycopg2, whose calls become subsegments.
    return Tracer()


tracer = _tracer()
