"""report_render: the monthly report as a chart PNG and a PDF (jobs/report_render.py), per report, over
REPORTS users of the data set who spent in its last full month, against the text-only report in the same run.

Each user's report is built by the reports task's own statement (`build_monthly_report`, timed apart as
`query_ms`), then drawn: the chart and the PDF together (`render_report`, what the task adds to a report),
and the text alone (`report_text`, what it sent before). The bytes are what goes to Telegram: the PNG, the
PDF and the caption, against the text. Times are wall time per report (median, p99) and the process's CPU
time per report (the shared machine's other work inflates the wall time; the CPU time less so). The first
report, which imports matplotlib and prepares the fonts, is timed apart (`first_report_ms`) and left out.

Goal (issue 15): chart and PDF together under 150 ms median on this machine."""

from __future__ import annotations

import statistics
import time
from typing import Any

from expensebot_tools.bench import BenchContext, benchmark

REPORTS = 1_000
GOAL_MEDIAN_MS = 150.0

# A deterministic spread of users over the whole data set (not the first thousand ids), who spent in the month.
_SAMPLE_USERS = """
SELECT u.user_id, u.language_code
  FROM users u
 WHERE EXISTS (SELECT 1 FROM expenses e
                WHERE e.user_id = u.user_id AND e.spent_at >= %(start)s AND e.spent_at < %(end)s)
 ORDER BY hashtext(u.user_id::text)
 LIMIT %(limit)s
"""


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@benchmark("report_render")
def run(ctx: BenchContext) -> None:
    """The monthly report's chart + PDF per report (median, p99, bytes) against the text-only report."""
    from expensebot.jobs import report_render
    from expensebot.jobs.monthly_reports import build_monthly_report, month_bounds, previous_month, report_text
    from expensebot.texts import language_for

    runtime = ctx.runtime()
    tz = runtime.settings.tz
    month = previous_month(ctx.dataset.now.astimezone(tz).date().replace(day=1))
    start, end = month_bounds(month, tz)
    users = runtime.db.fetch_tuples(_SAMPLE_USERS, {"start": start, "end": end, "limit": REPORTS})

    first_started = time.perf_counter()
    report_render.render_report(build_monthly_report(runtime, users[0][0], month), language_for(users[0][1]))
    first_report_ms = (time.perf_counter() - first_started) * 1000

    query_ms: list[float] = []
    render_ms: list[float] = []
    render_cpu_ms: list[float] = []
    chart_ms: list[float] = []
    text_ms: list[float] = []
    sent_bytes: list[int] = []
    png_bytes: list[int] = []
    pdf_bytes: list[int] = []
    text_bytes: list[int] = []
    categories: list[int] = []
    with ctx.progress() as progress:
        task = progress.add_task("reports", total=len(users))
        for user_id, language_code in users:
            language = language_for(language_code)
            started = time.perf_counter()
            report = build_monthly_report(runtime, user_id, month)
            query_ms.append((time.perf_counter() - started) * 1000)

            started, cpu_started = time.perf_counter(), time.process_time()
            rendered = report_render.render_report(report, language)
            render_ms.append((time.perf_counter() - started) * 1000)
            render_cpu_ms.append((time.process_time() - cpu_started) * 1000)

            started = time.perf_counter()
            report_render.chart_pixels(report, language)
            chart_ms.append((time.perf_counter() - started) * 1000)

            started = time.perf_counter()
            text = report_text(report, language)
            text_ms.append((time.perf_counter() - started) * 1000)

            png_bytes.append(len(rendered.png))
            pdf_bytes.append(len(rendered.pdf))
            sent_bytes.append(len(rendered.png) + len(rendered.pdf) + len(rendered.caption.encode()))
            text_bytes.append(len(text.encode()))
            categories.append(len(report.main.categories))
            progress.advance(task)

    median_ms = statistics.median(render_ms)
    figures: dict[str, Any] = {
        "reports": len(users),
        "month": f"{month:%Y-%m}",
        "median_categories": statistics.median(categories),
        "first_report_ms": round(first_report_ms, 1),
        "chart_and_pdf_median_ms": round(median_ms, 1),
        "chart_and_pdf_p99_ms": round(_percentile(render_ms, 0.99), 1),
        "chart_and_pdf_cpu_median_ms": round(statistics.median(render_cpu_ms), 1),
        "chart_alone_median_ms": round(statistics.median(chart_ms), 1),
        "text_only_median_ms": round(statistics.median(text_ms), 3),
        "text_only_p99_ms": round(_percentile(text_ms, 0.99), 3),
        "report_query_median_ms": round(statistics.median(query_ms), 2),
        "report_query_p99_ms": round(_percentile(query_ms, 0.99), 2),
        "bytes_sent_median": int(statistics.median(sent_bytes)),
        "bytes_sent_p99": int(_percentile([float(b) for b in sent_bytes], 0.99)),
        "png_bytes_median": int(statistics.median(png_bytes)),
        "pdf_bytes_median": int(statistics.median(pdf_bytes)),
        "text_only_bytes_median": int(statistics.median(text_bytes)),
        "goal_median_ms": GOAL_MEDIAN_MS,
        "goal_met": median_ms < GOAL_MEDIAN_MS,
    }
    ctx.record(
        figures,
        note=(f"Chart + PDF: {median_ms:.0f} ms median per report (goal < {GOAL_MEDIAN_MS:.0f} ms), against "
              f"{statistics.median(text_ms):.2f} ms for the text alone; "
              f"{figures['bytes_sent_median']:,} bytes sent against {figures['text_only_bytes_median']:,}."),
    )
