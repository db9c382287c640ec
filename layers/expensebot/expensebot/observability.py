"""Powertools logger, metrics and tracer, set up once for every function. Service name, log level,
metrics namespace and whether tracing is on come from the POWERTOOLS_* variables the template sets."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
# X-Ray tracing follows the template's Tracing parameter (POWERTOOLS_TRACE_DISABLED when off).
tracer = Tracer()
