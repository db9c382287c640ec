"""Powertools logger and metrics, set up once for every function (service name, level and namespace
come from the POWERTOOLS_* variables the template sets)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()
