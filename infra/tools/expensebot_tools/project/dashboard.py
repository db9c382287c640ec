"""What template.yaml's monitoring watches: the `OperationsDashboard` widgets (its DashboardBody is a Fn::Sub
JSON string) and every CloudWatch alarm's metrics, as metric queries (namespace, name, dimensions, stat,
period). `ops dashboard` draws the widgets from these; a test checks that each custom-namespace metric they
name is one the code emits.

The template's references are resolved against a deployment's physical ids (a queue's URL gives its
QueueName, a function's Ref its name); a resource the deployment does not list keeps its logical id, which
is also what the metric check uses: it compares only metrics of the app's own namespace, whose dimensions
name no resource."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from expensebot_tools.project.emf import MetricKey, dimensions_of
from expensebot_tools.project.template import Resolver, Template

DASHBOARD_ID = "OperationsDashboard"
DEFAULT_PERIOD = 300
DEFAULT_STAT = "Average"  # CloudWatch's default for a metric widget without one


def is_aws_namespace(namespace: str) -> bool:
    """AWS/SQS, AWS/Lambda, AWS/Scheduler…: published by AWS itself, never by this code."""
    return namespace.startswith("AWS/")


@dataclass(frozen=True)
class MetricQuery:
    key: MetricKey
    stat: str
    period: int
    label: str


@dataclass
class Widget:
    number: int  # position in the body, from 1
    type: str
    x: int
    y: int
    width: int
    height: int
    title: str
    properties: dict[str, Any]
    queries: list[MetricQuery] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be turned into a query, and why

    @property
    def view(self) -> str:
        return str(self.properties.get("view", "timeSeries"))


class _DeployedAttributes(Mapping[tuple[str, str], str]):
    """!GetAtt / ${X.Attr} of the template's resources from their physical ids."""

    def __init__(self, template: Template, physical: Mapping[str, str], pseudo: Mapping[str, str]) -> None:
        self._template = template
        self._physical = physical
        self._pseudo = pseudo

    def __getitem__(self, key: tuple[str, str]) -> str:
        logical, attribute = key
        if logical not in self._template.resources:
            raise KeyError(key)
        physical = self._physical.get(logical, logical)
        kind = self._template.resources[logical]["Type"]
        if attribute == "QueueName":
            return physical.rstrip("/").rsplit("/", 1)[-1]  # a queue's physical id is its URL
        if attribute == "TopicName":
            return physical.rsplit(":", 1)[-1]  # a topic's physical id is its ARN
        if attribute == "Arn" and kind == "AWS::CloudWatch::Alarm":
            return (f"arn:{self._pseudo['AWS::Partition']}:cloudwatch:{self._pseudo['AWS::Region']}:"
                    f"{self._pseudo['AWS::AccountId']}:alarm:{physical}")
        return physical

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(())

    def __len__(self) -> int:
        return 0


def deployment_resolver(template: Template, physical: Mapping[str, str] | None = None, *,
                        pseudo: Mapping[str, str] | None = None,
                        parameters: Mapping[str, Any] | None = None) -> Resolver:
    """The template's intrinsics against a deployment (logical id → physical id; missing ones keep their
    logical id), its parameters' defaults unless given."""
    physical = dict(physical or {})
    base = Resolver(parameters={})
    pseudo_values = {**base.pseudo, **(pseudo or {})}
    refs = {logical: physical.get(logical, logical) for logical in template.resources}
    return Resolver(parameters={**template.parameter_defaults(), **(parameters or {})}, refs=refs,
                    attributes=_DeployedAttributes(template, physical, pseudo_values),
                    conditions=template.raw.get("Conditions", {}), pseudo=pseudo_values)


def dashboard_body(template: Template, resolver: Resolver) -> dict[str, Any]:
    body = template.resources[DASHBOARD_ID]["Properties"]["DashboardBody"]
    text = resolver.resolve(body)
    return json.loads(text) if isinstance(text, str) else text


def _metric_queries(properties: Mapping[str, Any]) -> tuple[list[MetricQuery], list[str]]:
    """A metric widget's `metrics` array: [namespace, name, dim, value, …, {options}], where "." repeats the
    previous entry's item at that place (the console's shorthand); expressions are noted, not queried."""
    queries, notes = [], []
    previous: list[Any] = []
    for entry in properties.get("metrics", []):
        options = entry[-1] if entry and isinstance(entry[-1], dict) else {}
        items = list(entry[:-1] if options else entry)
        if not items and "expression" in options:
            notes.append(f"expression {options['expression']!r} ({options.get('label', options.get('id', ''))}) "
                         "not drawn: math and SEARCH are CloudWatch's own")
            continue
        if "..." in items:
            notes.append(f"metric {entry!r}: the '...' shorthand is not read here")
            continue
        items = [previous[i] if item == "." and i < len(previous) else item for i, item in enumerate(items)]
        previous = items
        if options.get("visible") is False:
            continue
        namespace, name, rest = str(items[0]), str(items[1]), items[2:]
        key = MetricKey(namespace, name, dimensions_of(zip(rest[::2], rest[1::2], strict=False)))
        label = str(options.get("label") or f"{name} {key.dimensions_text()}")
        queries.append(MetricQuery(key, str(options.get("stat") or properties.get("stat") or DEFAULT_STAT),
                                   int(options.get("period") or properties.get("period") or DEFAULT_PERIOD), label))
    return queries, notes


def _markdown_heading(properties: Mapping[str, Any]) -> str:
    """A text widget has no title: its markdown's first line stands for one."""
    first = str(properties.get("markdown", "")).strip().splitlines()[:1]
    return first[0].lstrip("#").strip() if first else ""


def dashboard_widgets(template: Template, resolver: Resolver) -> list[Widget]:
    widgets = []
    for number, raw in enumerate(dashboard_body(template, resolver).get("widgets", []), start=1):
        properties = dict(raw.get("properties", {}))
        widget = Widget(number=number, type=str(raw.get("type", "")), x=int(raw.get("x", 0)), y=int(raw.get("y", 0)),
                        width=int(raw.get("width", 6)), height=int(raw.get("height", 6)),
                        title=str(properties.get("title") or _markdown_heading(properties)
                                  or f"{raw.get('type', 'widget')} {number}"),
                        properties=properties)
        if widget.type == "metric":
            widget.queries, widget.notes = _metric_queries(properties)
        widgets.append(widget)
    return widgets


def alarm_queries(template: Template, resolver: Resolver) -> dict[str, list[MetricQuery]]:
    """Each AWS::CloudWatch::Alarm's metrics: its single metric, or every MetricStat of its Metrics list
    (the math expressions combine those)."""
    found: dict[str, list[MetricQuery]] = {}
    for alarm_id, resource in template.of_type("AWS::CloudWatch::Alarm").items():
        properties = resolver.resolve(resource["Properties"])
        queries = []
        if "MetricName" in properties:
            key = MetricKey(str(properties.get("Namespace", "")), str(properties["MetricName"]),
                            dimensions_of((d["Name"], d["Value"]) for d in properties.get("Dimensions", [])))
            queries.append(MetricQuery(key, str(properties.get("Statistic") or properties.get("ExtendedStatistic")),
                                       int(properties.get("Period", DEFAULT_PERIOD)), alarm_id))
        for metric in properties.get("Metrics", []):
            stat = metric.get("MetricStat")
            if not stat:
                continue
            inner = stat["Metric"]
            key = MetricKey(str(inner["Namespace"]), str(inner["MetricName"]),
                            dimensions_of((d["Name"], d["Value"]) for d in inner.get("Dimensions", [])))
            queries.append(MetricQuery(key, str(stat["Stat"]), int(stat["Period"]), f"{alarm_id} {metric['Id']}"))
        found[alarm_id] = queries
    return found


@dataclass(frozen=True)
class WatchedMetric:
    key: MetricKey
    watched_by: tuple[str, ...]  # widget titles and alarm ids


def watched_metrics(template: Template, resolver: Resolver | None = None) -> list[WatchedMetric]:
    """Every metric the dashboard's widgets and the alarms watch, with who watches it."""
    resolver = resolver or deployment_resolver(template)
    by_key: dict[MetricKey, list[str]] = {}
    for widget in dashboard_widgets(template, resolver):
        for query in widget.queries:
            by_key.setdefault(query.key, [])
            if f"widget: {widget.title}" not in by_key[query.key]:
                by_key[query.key].append(f"widget: {widget.title}")
    for alarm_id, queries in alarm_queries(template, resolver).items():
        for query in queries:
            by_key.setdefault(query.key, [])
            if f"alarm: {alarm_id}" not in by_key[query.key]:
                by_key[query.key].append(f"alarm: {alarm_id}")
    return [WatchedMetric(key, tuple(users)) for key, users in
            sorted(by_key.items(), key=lambda item: (item[0].namespace, item[0].name, item[0].dimensions))]
