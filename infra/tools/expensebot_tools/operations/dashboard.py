"""`expensebot ops dashboard`: template.yaml's OperationsDashboard drawn as pictures, one PNG per metric widget,
and an index.html that lays them out on the dashboard's grid with their titles.

The data comes from CloudWatch's GetMetricData (each widget's metrics with its stat and period), or, with
--from-emf, from the Embedded Metric Format lines the functions printed (`simulate --metrics FILE`, `local up`
into .expensebot/metrics.jsonl), with the same statistics computed here. AWS/* metrics (SQS, Lambda,
Scheduler) are AWS's own and are never in EMF lines: their pictures say so. Math and SEARCH expressions are
CloudWatch's to evaluate: a widget with one notes it in its picture. Text, alarm and log widgets get a card
with what they hold instead of a picture.

Resource names in the widgets (queues, functions) come from the deployment `ops` talks to
(operations/deployment.py); a resource it does not know keeps its logical id."""

from __future__ import annotations

import argparse
import html
import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from expensebot_tools.console import CliError, print_json
from expensebot_tools.operations.deployment import STACK_VARIABLE, Deployment
from expensebot_tools.project.dashboard import (
    MetricQuery,
    Widget,
    dashboard_widgets,
    deployment_resolver,
    is_aws_namespace,
)
from expensebot_tools.project.emf import EmfPoint, read_emf_file, series
from expensebot_tools.project.template import PROJECT_ROOT, Template

DEFAULT_OUT = PROJECT_ROOT / ".expensebot" / "dashboard"
DEFAULT_SINCE = "1d"
# CloudWatch's console widens a widget's period for long ranges; so does this, to at most this many points.
MAX_POINTS = 1440
PERIODS = (60, 300, 900, 3600, 10800, 21600, 86400)
GET_METRIC_DATA_MAX_QUERIES = 500


@dataclass
class Series:
    query: MetricQuery
    times: list[datetime] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


@dataclass
class DrawnWidget:
    widget: Widget
    image: str | None = None  # file name in the output folder
    period: int | None = None
    series: list[Series] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parse_since(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not match:
        raise CliError(f"--since {text!r}: expected a number and a unit, e.g. 90m, 12h, 30d, 2w")
    number, unit = float(match.group(1)), match.group(2)
    seconds = number * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    if seconds <= 0:
        raise CliError(f"--since {text!r}: must be more than nothing")
    return timedelta(seconds=seconds)


def effective_period(period: int, start: datetime, end: datetime) -> int:
    """The widget's period, widened to the next standard one until the window has at most MAX_POINTS."""
    span = (end - start).total_seconds()
    for candidate in (period, *[p for p in PERIODS if p > period]):
        if span / candidate <= MAX_POINTS:
            return candidate
    return max(period, math.ceil(span / MAX_POINTS))


# --- where the numbers come from --------------------------------------------------------------------------


class CloudWatchSource:
    name = "CloudWatch GetMetricData"

    def __init__(self, client: Any) -> None:
        self.client = client

    def fetch(self, queries: list[MetricQuery], period: int, start: datetime, end: datetime) -> list[Series]:
        found = [Series(query) for query in queries]
        for first in range(0, len(queries), GET_METRIC_DATA_MAX_QUERIES):
            chunk = queries[first:first + GET_METRIC_DATA_MAX_QUERIES]
            requests = [{
                "Id": f"m{first + i}",
                "MetricStat": {
                    "Metric": {"Namespace": q.key.namespace, "MetricName": q.key.name,
                               "Dimensions": [{"Name": n, "Value": v} for n, v in q.key.dimensions]},
                    "Period": period, "Stat": q.stat},
                "ReturnData": True,
            } for i, q in enumerate(chunk)]
            token: str | None = None
            while True:
                extra = {"NextToken": token} if token else {}
                answer = self.client.get_metric_data(MetricDataQueries=requests, StartTime=start, EndTime=end,
                                                     ScanBy="TimestampAscending", **extra)
                for result in answer.get("MetricDataResults", []):
                    target = found[int(result["Id"][1:])]
                    target.times.extend(t.astimezone(UTC) for t in result.get("Timestamps", []))
                    target.values.extend(float(v) for v in result.get("Values", []))
                token = answer.get("NextToken")
                if not token:
                    break
        for one in found:  # pages may interleave: keep each series in time order
            pairs = sorted(zip(one.times, one.values, strict=True))
            one.times, one.values = [t for t, _ in pairs], [v for _, v in pairs]
        return found

    def missing_reason(self, query: MetricQuery) -> str:
        return "no datapoints in this window"


class EmfSource:
    def __init__(self, path: Path, points: list[EmfPoint]) -> None:
        self.path = path
        self.points = points
        self.name = f"EMF lines of {path}"

    def fetch(self, queries: list[MetricQuery], period: int, start: datetime, end: datetime) -> list[Series]:
        found = []
        for query in queries:
            times, values = series(self.points, query.key, query.stat, period, start, end)
            found.append(Series(query, times, values))
        return found

    def missing_reason(self, query: MetricQuery) -> str:
        if is_aws_namespace(query.key.namespace):
            return f"{query.key.namespace} metrics are published by AWS, not printed by the functions"
        return "not emitted in this window"


def _load_emf(path: Path) -> EmfSource:
    try:
        points = read_emf_file(path)
    except FileNotFoundError:
        raise CliError(f"--from-emf {path}: no such file (`expensebot simulate --metrics FILE` writes one)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CliError(f"--from-emf {path}: {exc}") from None
    return EmfSource(path, points)


# --- drawing ----------------------------------------------------------------------------------------------


def _period_text(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def draw_metric_widget(drawn: DrawnWidget, path: Path, start: datetime, end: datetime,
                       missing: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    widget = drawn.widget
    figure, axes = plt.subplots(figsize=(max(5.0, widget.width * 0.62), max(3.0, widget.height * 0.62)), dpi=100)
    try:
        with_data = [s for s in drawn.series if s.values]
        if widget.view == "singleValue":
            axes.axis("off")
            lines = [f"{s.query.label}: {s.values[-1]:g}" for s in with_data] or ["no data in this window"]
            axes.text(0.02, 0.95, "\n".join(lines), va="top", fontsize=12, transform=axes.transAxes)
        else:
            periods = max(1.0, (end - start).total_seconds() / (drawn.period or 300))
            for one in with_data:
                if len(one.values) < periods / 4:
                    # A few periods with data in a long window: a line between them would draw values for the
                    # empty periods in between, so each period is a stem instead.
                    marker = axes.plot(one.times, one.values, "o", markersize=3, label=one.query.label)[0]
                    axes.vlines(one.times, 0, one.values, colors=marker.get_color(), linewidth=1.2)
                else:
                    axes.plot(one.times, one.values, label=one.query.label, linewidth=1.3)
            for line in widget.properties.get("annotations", {}).get("horizontal", []):
                if isinstance(line, dict) and isinstance(line.get("value"), int | float):
                    axes.axhline(line["value"], color="tab:red", linestyle="--", linewidth=1,
                                 label=str(line.get("label", "")) or None)
            axes.set_xlim(start, end)
            axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(axes.xaxis.get_major_locator()))
            axes.set_xlabel("UTC", fontsize=8, loc="right")
            axes.grid(alpha=0.3)
            axes.set_ylim(bottom=0)
            if with_data:
                axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
            else:
                reasons = sorted(set(missing.values())) or ["no metrics"]
                axes.text(0.5, 0.5, "no data in this window\n" + "\n".join(reasons), ha="center", va="center",
                          color="dimgray", fontsize=9, transform=axes.transAxes, wrap=True)
        stats = sorted({q.stat for q in widget.queries})
        subtitle = f"{', '.join(stats)} per {_period_text(drawn.period or 0)}" if widget.queries else ""
        axes.set_title(f"{widget.title}\n{subtitle}", fontsize=10, loc="left")
        footer = list(drawn.notes)
        silent = [label for label in missing if any(s.query.label == label for s in drawn.series)]
        if with_data and silent:
            footer.append("no data: " + ", ".join(silent))
        if footer:
            figure.text(0.01, -0.02, "\n".join(footer), fontsize=7, color="dimgray", va="top", wrap=True)
        figure.savefig(path, bbox_inches="tight")
    finally:
        plt.close(figure)


_PAGE_SCRIPT = """
function check(){const r=[...document.images].map(i=>({id:i.id,complete:i.complete,w:i.naturalWidth}));
 if(r.some(x=>!x.complete)) return setTimeout(check,50);
 const broken=r.filter(x=>x.w===0).map(x=>x.id);
 document.body.setAttribute("data-img-total",r.length);
 document.body.setAttribute("data-img-broken",broken.join(","));
 document.body.setAttribute("data-img-status",broken.length?"BROKEN":"ALL_LOADED");}
window.addEventListener("load",check);
"""


def _card_body(drawn: DrawnWidget) -> str:
    widget = drawn.widget
    if drawn.image:
        return (f'<img id="widget-{widget.number}" src="{html.escape(drawn.image)}" '
                f'alt="{html.escape(widget.title)}">')
    if widget.type == "text":
        return f'<pre class="text">{html.escape(str(widget.properties.get("markdown", "")))}</pre>'
    if widget.type == "alarm":
        names = [str(arn).rsplit(":alarm:", 1)[-1] for arn in widget.properties.get("alarms", [])]
        items = "".join(f"<li>{html.escape(name)}</li>" for name in names)
        return ("<p>Alarms (their states: CloudWatch's console or <code>aws cloudwatch describe-alarms</code>):</p>"
                f"<ul>{items}</ul>")
    if widget.type == "log":
        return ("<p>A CloudWatch Logs Insights query: its results are in the console's dashboard; "
                "<code>expensebot ops logs FUNCTION</code> reads the lines.</p>"
                f'<pre class="query">{html.escape(str(widget.properties.get("query", "")))}</pre>')
    return f"<p>A {html.escape(widget.type)} widget: not drawn here.</p>"


def write_index(out: Path, drawn: list[DrawnWidget], *, source: str, start: datetime, end: datetime) -> Path:
    cards = []
    for one in drawn:
        w = one.widget
        style = f"grid-column:{w.x + 1} / span {w.width};grid-row:{w.y + 1} / span {w.height}"
        notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in one.notes if not one.image)
        cards.append(f'<section class="card {html.escape(w.type)}" style="{style}">'
                     f"<h2>{html.escape(w.title)}</h2>{_card_body(one)}{notes}</section>")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ExpenseBot dashboard</title>
<style>
body{{font-family:system-ui,sans-serif;margin:16px;background:#f4f5f7;color:#16191f}}
header p{{margin:2px 0;color:#555}}
.grid{{display:grid;grid-template-columns:repeat(24,1fr);grid-auto-rows:56px;gap:8px;margin-top:12px}}
.card{{background:#fff;border:1px solid #d5dbdb;border-radius:4px;padding:8px;overflow:auto}}
.card h2{{font-size:14px;margin:0 0 6px}}
.card img{{max-width:100%;max-height:calc(100% - 28px);display:block}}
pre{{white-space:pre-wrap;font-size:12px}} .note{{color:#666;font-size:12px}}
</style><script>{_PAGE_SCRIPT}</script></head>
<body><header><h1>ExpenseBot operations dashboard</h1>
<p>Data: {html.escape(source)}</p>
<p>Window: {start.isoformat(timespec="minutes")} .. {end.isoformat(timespec="minutes")} (UTC)</p>
<p>Drawn by <code>expensebot ops dashboard</code> from template.yaml's OperationsDashboard.</p></header>
<main class="grid">
{chr(10).join(cards)}
</main></body></html>
"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


# --- the command ------------------------------------------------------------------------------------------


def _resolver_for(template: Template, deployment: Deployment | None) -> Any:
    import boto3

    region = boto3.session.Session().region_name or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    pseudo = {"AWS::Region": region, "AWS::StackName": os.environ.get(STACK_VARIABLE) or "expensebot-local"}
    return deployment_resolver(template, deployment.resources if deployment else None, pseudo=pseudo)


def build_dashboard(*, out: Path, source: Any, start: datetime, end: datetime,
                    deployment: Deployment | None) -> tuple[Path, list[DrawnWidget]]:
    template = Template()
    widgets = dashboard_widgets(template, _resolver_for(template, deployment))
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("widget-*.png"):  # a previous drawing's pictures would be shown as current
        old.unlink()
    drawn = []
    for widget in widgets:
        one = DrawnWidget(widget, notes=list(widget.notes))
        if widget.type == "metric":
            one.period = effective_period(min((q.period for q in widget.queries), default=300), start, end)
            if widget.queries:
                one.series = source.fetch(widget.queries, one.period, start, end)
            widest = max((q.period for q in widget.queries), default=one.period)
            if one.period > widest:
                span = (end - start).total_seconds()
                one.notes.append(f"period widened from {_period_text(widest)} to {_period_text(one.period)} "
                                 f"for a window of {span / 86400:.1f} days")
            missing = {s.query.label: source.missing_reason(s.query) for s in one.series if not s.values}
            one.image = f"widget-{widget.number:02d}.png"
            draw_metric_widget(one, out / one.image, start, end, missing)
        drawn.append(one)
    index = write_index(out, drawn, source=source.name, start=start, end=end)
    return index, drawn


def cmd_dashboard(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401  (only this command needs it)
    except ImportError:
        raise CliError("matplotlib is not installed: pip install -e '.[dev]' (it is in the dev extra)") from None
    since = parse_since(args.since) if args.since else None
    if args.from_emf:
        source: Any = _load_emf(Path(args.from_emf))
        if not source.points:
            raise CliError(f"--from-emf {args.from_emf}: no EMF lines in it")
        # The file's own time: a simulated month may lie in the future or the past of this machine's clock.
        last = max(p.timestamp_ms for p in source.points) / 1000
        end = datetime.fromtimestamp(last + 1, UTC)
        first = datetime.fromtimestamp(min(p.timestamp_ms for p in source.points) / 1000, UTC)
        start = end - since if since else first
        try:
            deployment: Deployment | None = Deployment.from_environment()
        except CliError:
            deployment = None  # the names only matter for AWS/* metrics, which EMF never holds
    else:
        import boto3

        source = CloudWatchSource(boto3.client("cloudwatch"))
        deployment = Deployment.from_environment()
        end = datetime.now(UTC).replace(second=0, microsecond=0)
        start = end - (since or parse_since(DEFAULT_SINCE))
    out = Path(args.out) if args.out else DEFAULT_OUT
    try:
        index, drawn = build_dashboard(out=out, source=source, start=start, end=end, deployment=deployment)
    except OSError as exc:
        raise CliError(f"--out {out}: cannot write there: {exc.strerror or exc}") from None
    if args.json:
        print_json({
            "index": str(index.resolve()), "source": source.name,
            "start": start.isoformat(), "end": end.isoformat(),
            "widgets": [{
                "number": d.widget.number, "type": d.widget.type, "title": d.widget.title,
                "image": str((out / d.image).resolve()) if d.image else None, "period": d.period,
                "series": [{"label": s.query.label, "namespace": s.query.key.namespace, "metric": s.query.key.name,
                            "dimensions": dict(s.query.key.dimensions), "stat": s.query.stat, "points": len(s.values),
                            "total": math.fsum(s.values)} for s in d.series],
                "notes": d.notes,
            } for d in drawn],
        })
    else:
        print(index.resolve())
    return 0


def add_parser(sub: Any) -> None:
    dashboard = sub.add_parser(
        "dashboard", help="draw template.yaml's CloudWatch dashboard as PNG pictures with an index.html")
    dashboard.add_argument("--out", metavar="DIR",
                           help="folder for index.html and the pictures "
                                f"(default {DEFAULT_OUT.relative_to(PROJECT_ROOT)})")
    dashboard.add_argument("--since", metavar="AGE",
                           help=f"how far back, e.g. 90m, 12h, 30d (default {DEFAULT_SINCE} from CloudWatch; with "
                                "--from-emf, back from the file's last line, default the whole file)")
    dashboard.add_argument("--from-emf", metavar="FILE",
                           help="draw from these Embedded Metric Format lines (`simulate --metrics FILE`, "
                                "`local up`'s .expensebot/metrics.jsonl) instead of CloudWatch")
    dashboard.add_argument("--json", action="store_true",
                           help="print what was drawn (files, series, points) as JSON instead of the page's path")
    dashboard.set_defaults(func=cmd_dashboard)
