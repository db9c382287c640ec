"""Powertools logger, metrics and tracer, set up once for every function. Service name, log level,
metrics namespace and whether tracing is on come from the POWERTOOLS_* variables the template sets."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
# The namespace is fixed here, not only by the environment: Powertools reads it when this module is
# imported, and a long batch flushes metrics mid-invocation (every 100 values), which fails without one.
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "ExpenseBot"
metrics = Metrics(namespace=METRICS_NAMESPACE)
# X-Ray tracing follows the template's Tracing parameter (POWERTOOLS_TRACE_DISABLED when off).
tracer = Tracer()
