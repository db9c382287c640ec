"""CloudWatch Embedded Metric Format: the JSON lines Powertools Metrics prints at each flush, which CloudWatch
Logs turns into metrics. Read here for the dashboard's local data (`ops dashboard --from-emf`) and for the test
that every metric the dashboard and the alarms watch is emitted; written by `simulate --metrics` and
`local up` (expensebot_tools.local.metrics).

One line holds one timestamp, directives (namespace, dimension sets, metric names) and the values as
top-level keys: a metric's value is a number or a list of numbers (Powertools lists every value added in the
invocation). Each dimension set of a directive is a metric of its own in CloudWatch, as here.

The statistics CloudWatch computes per period are computed the same way over these values."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from expensebot_tools.project.json_lines import json_lines

Dimensions = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class MetricKey:
    """A CloudWatch metric's identity: namespace, name and its exact set of dimensions (sorted by name)."""

    namespace: str
    name: str
    dimensions: Dimensions = ()

    def dimensions_text(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.dimensions) or "(none)"


@dataclass(frozen=True)
class EmfPoint:
    key: MetricKey
    timestamp_ms: int
    values: tuple[float, ...]


def dimensions_of(pairs: Iterable[tuple[str, Any]]) -> Dimensions:
    return tuple(sorted((str(name), str(value)) for name, value in pairs))


def is_emf(record: Any) -> bool:
    return (isinstance(record, dict) and isinstance(record.get("_aws"), dict)
            and isinstance(record["_aws"].get("CloudWatchMetrics"), list))


def parse_emf(record: dict[str, Any]) -> list[EmfPoint]:
    """Every (metric, dimension set) of one EMF record with its values; ValueError when it is not EMF."""
    if not is_emf(record):
        raise ValueError("not an Embedded Metric Format record (no _aws.CloudWatchMetrics)")
    meta = record["_aws"]
    timestamp = meta.get("Timestamp")
    if not isinstance(timestamp, int | float):
        raise ValueError("EMF record without a numeric _aws.Timestamp")
    points = []
    for directive in meta["CloudWatchMetrics"]:
        namespace = str(directive.get("Namespace", ""))
        for dimension_set in directive.get("Dimensions") or [[]]:
            missing = [name for name in dimension_set if name not in record]
            if missing:
                raise ValueError(f"EMF record names dimension(s) {missing} without a value")
            dimensions = dimensions_of((name, record[name]) for name in dimension_set)
            for metric in directive.get("Metrics", []):
                name = str(metric["Name"])
                raw = record.get(name)
                values = raw if isinstance(raw, list) else [raw]
                numbers = tuple(float(v) for v in values if isinstance(v, int | float))
                if numbers:
                    points.append(EmfPoint(MetricKey(namespace, name, dimensions), int(timestamp), numbers))
    return points


def read_emf_file(path: Path) -> list[EmfPoint]:
    """Every EMF point of a JSON-lines file; other JSON lines (log lines) are skipped, broken ones named."""
    points: list[EmfPoint] = []
    for where, record in json_lines(path, str(path)):
        if is_emf(record):
            try:
                points.extend(parse_emf(record))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{where}: {exc}") from None
    return points


def statistic(values: Sequence[float], stat: str) -> float:
    """CloudWatch's statistic over one period's values: Sum, Average, Minimum, Maximum, SampleCount, pNN."""
    if not values:
        raise ValueError("no values")
    name = stat.strip()
    if name == "Sum":
        return math.fsum(values)
    if name == "Average":
        return math.fsum(values) / len(values)
    if name == "Minimum":
        return min(values)
    if name == "Maximum":
        return max(values)
    if name == "SampleCount":
        return float(len(values))
    if name[:1] in "pP" and name[1:].replace(".", "", 1).isdigit():
        # Nearest rank, as CloudWatch's percentiles over raw values.
        ordered = sorted(values)
        rank = max(1, math.ceil(float(name[1:]) / 100 * len(ordered)))
        return ordered[min(rank, len(ordered)) - 1]
    raise ValueError(f"statistic {stat!r} is not one of Sum, Average, Minimum, Maximum, SampleCount, pNN")


def series(points: Iterable[EmfPoint], key: MetricKey, stat: str, period: int, start: datetime,
           end: datetime) -> tuple[list[datetime], list[float]]:
    """What GetMetricData answers for one MetricStat: one value per period that has data, periods aligned to
    the epoch, oldest first, over [start, end)."""
    buckets: dict[int, list[float]] = {}
    low, high = start.timestamp() * 1000, end.timestamp() * 1000
    for point in points:
        if point.key == key and low <= point.timestamp_ms < high:
            bucket = int(point.timestamp_ms // (period * 1000)) * period
            buckets.setdefault(bucket, []).extend(point.values)
    times = sorted(buckets)
    return ([datetime.fromtimestamp(t, UTC) for t in times], [statistic(buckets[t], stat) for t in times])
