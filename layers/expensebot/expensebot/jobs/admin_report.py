"""send_daily_admin_report — daily 10:00, queue `reports`.

Every chat in ADMIN_CHAT_IDS gets the system's state as of the run's slot: users (total, new in the last
24 h, active in the last 24 h), the previous calendar day's expenses (count, and the sum per currency),
each job's runs of the last 24 h with their failures (a job that did not run at all shows 0, which is itself the alarm),
and per queue the messages waiting, in flight and in its DLQ. The numbers are gathered once, by the job,
so every admin reads the same report; one message per admin chat per slot."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

from pydantic import AwareDatetime, BaseModel

from expensebot.bootstrap import Runtime
from expensebot.config import QUEUE_NAMES
from expensebot.delivery import Delivery, OutboundMessage, deliver
from expensebot.money import totals_by_currency
from expensebot.observability import logger
from expensebot.scheduling import JobContext, JobResult, job, jobs, lease_ran_out
from expensebot.tasks import task
from expensebot.texts import format_totals, language_for, t

JOB = "send_daily_admin_report"
KIND = "admin_report"  # notifications.kind of the messages this job\'s task sends


class JobRunCounts(BaseModel):
    job: str
    runs: int = 0
    failed: int = 0
    running: int = 0
    last_status: str | None = None


class QueueCounts(BaseModel):
    queue: str
    waiting: int | None = None  # None: SQS could not be asked (the report still goes out)
    in_flight: int | None = None
    dead_letter: int | None = None


class AdminStats(BaseModel):
    as_of: AwareDatetime
    users_total: int
    users_new: int
    users_active: int
    day: date  # the previous calendar day, in the application's zone
    expenses_count: int
    # One total per currency, never one sum across them: [("RUB", 1500), ("USD", 25)], the default first.
    expenses_sums: list[tuple[str, Decimal]] = []
    job_runs: list[JobRunCounts]
    queues: list[QueueCounts]


class AdminReport(BaseModel):
    """One unit of work on the reports queue: the report for one admin chat."""

    chat_id: int
    language_code: str | None = None
    stats: AdminStats

    @property
    def dedupe_key(self) -> str:
        return f"admin_report:{self.chat_id}:{self.stats.as_of.isoformat()}"


# Users and yesterday's expenses in one statement; the indexes on users.created_at, users.last_seen_at
# and expenses.spent_at keep each part a range scan. Yesterday's amounts are summed per currency.
_USERS_AND_EXPENSES = """
SELECT (SELECT count(*) FROM users) AS users_total,
       (SELECT count(*) FROM users WHERE created_at > %(since)s AND created_at <= %(as_of)s) AS users_new,
       (SELECT count(*) FROM users WHERE last_seen_at > %(since)s AND last_seen_at <= %(as_of)s) AS users_active,
       COALESCE(sum(day.n), 0)::bigint AS expenses_count,
       COALESCE(json_agg(json_build_array(day.currency, day.total::text)) FILTER (WHERE day.n > 0), '[]')
         AS expenses_sums
  FROM (SELECT e.currency, count(*) AS n, sum(e.amount) AS total
          FROM expenses e
         WHERE e.spent_at >= %(day_start)s AND e.spent_at < %(day_end)s
         GROUP BY e.currency) day
"""

# A run still 'running' whose lease ran out lost its attempt (it could not even record 'failed', as when the
# database went away): it counts as a failure. Rows without a lease (before migration 0007) keep the hard limit.
_JOB_RUNS = f"""
SELECT job,
       count(*) AS runs,
       count(*) FILTER (WHERE status = 'failed' OR (status = 'running' AND lost)) AS failed,
       count(*) FILTER (WHERE status = 'running' AND NOT lost) AS running,
       (array_agg(CASE WHEN lost THEN 'failed' ELSE status END ORDER BY started_at DESC))[1] AS last_status
  FROM (SELECT job, status, started_at,
               {lease_ran_out(now="as_of")} AS lost
          FROM job_runs
         WHERE started_at > %(since)s AND started_at <= %(as_of)s) recent
 GROUP BY job
"""


def gather_admin_stats(runtime: Runtime, as_of: datetime) -> AdminStats:
    tz = runtime.settings.tz
    as_of = as_of.astimezone(tz)  # shown to admins in the application's zone
    since = as_of - timedelta(hours=24)
    day = as_of.astimezone(tz).date() - timedelta(days=1)
    day_start = datetime.combine(day, time(), tzinfo=tz)
    day_end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz)
    params = {"since": since, "as_of": as_of, "day_start": day_start, "day_end": day_end,
              "hard_limit": timedelta(seconds=runtime.settings.hard_time_limit_seconds)}
    (totals,) = runtime.db.fetch_all(_USERS_AND_EXPENSES, params)
    runs = {row["job"]: JobRunCounts(**row) for row in runtime.db.fetch_all(_JOB_RUNS, params)}
    return AdminStats(
        as_of=as_of,
        users_total=totals["users_total"],
        users_new=totals["users_new"],
        users_active=totals["users_active"],
        day=day,
        expenses_count=totals["expenses_count"],
        expenses_sums=totals_by_currency(
            ((code, Decimal(total)) for code, total in totals["expenses_sums"]), first=runtime.settings.default_currency
        ),
        # Every known job, and any other name the ledger holds (a job since removed, or a manual run).
        job_runs=[runs.get(name, JobRunCounts(job=name)) for name in sorted(jobs().keys() | runs.keys())],
        queues=[_queue_counts(runtime, queue) for queue in QUEUE_NAMES],
    )


def _queue_counts(runtime: Runtime, queue: str) -> QueueCounts:
    try:
        depth = runtime.queues.depth(queue)
    except Exception as exc:  # a missing permission or URL must not cost the admins their report
        logger.warning("queue depth unavailable", extra={"queue": queue, "error": str(exc)})
        return QueueCounts(queue=queue)
    return QueueCounts(
        queue=queue, waiting=depth.waiting + depth.delayed, in_flight=depth.in_flight, dead_letter=depth.dead_letter
    )


@job(JOB, queue="reports", schedule="daily 10:00")
def send_daily_admin_report(runtime: Runtime, ctx: JobContext) -> JobResult:
    admin_chats = runtime.settings.admin_chat_ids
    if not admin_chats:
        return JobResult(planned=0, enqueued=0, details={"skipped": "ADMIN_CHAT_IDS is empty"})
    stats = gather_admin_stats(runtime, ctx.slot)
    languages = {
        row["chat_id"]: row["language_code"]
        for row in runtime.db.fetch_all(
            "SELECT chat_id, language_code FROM users WHERE chat_id = ANY(%s)", (list(admin_chats),)
        )
    }
    reports = [AdminReport(chat_id=chat, language_code=languages.get(chat), stats=stats) for chat in admin_chats]
    enqueued = send_admin_report.delay_many(reports, runtime=runtime, job_run_id=ctx.run_id)
    return JobResult(planned=len(reports), enqueued=enqueued)


def admin_report_text(stats: AdminStats, language: str, default_currency: str = "RUB") -> str:
    lines = [
        t(language, "admin_title", date=stats.as_of.strftime("%Y-%m-%d %H:%M")),
        t(language, "admin_users", total=stats.users_total, new=stats.users_new, active=stats.users_active),
        t(
            language,
            "admin_expenses",
            day=stats.day.strftime("%d.%m.%Y"),
            count=stats.expenses_count,
            sum=format_totals(stats.expenses_sums or [(default_currency, Decimal(0))], language),
        ),
        t(language, "admin_jobs_header"),
    ]
    for runs in stats.job_runs:
        key = "admin_job_line_failed" if runs.failed else "admin_job_line"
        lines.append(t(language, key, job=runs.job, runs=runs.runs, failed=runs.failed))
    lines.append(t(language, "admin_queues_header"))
    for queue in stats.queues:
        if queue.waiting is None:
            lines.append(t(language, "admin_queue_unavailable", queue=queue.queue))
        else:
            key = "admin_queue_line_dlq" if queue.dead_letter else "admin_queue_line"
            lines.append(
                t(language, key, queue=queue.queue, waiting=queue.waiting, in_flight=queue.in_flight,
                  dead_letter=queue.dead_letter)
            )
    return "\n".join(lines)


@task("reports.send_admin_report", args=AdminReport, job=JOB, sends=(KIND,))
def send_admin_report(runtime: Runtime, report: AdminReport) -> Delivery:
    """Send the daily statistics to one admin chat."""
    language = language_for(report.language_code)
    return deliver(
        runtime,
        OutboundMessage(
            dedupe_key=report.dedupe_key,
            kind=KIND,
            chat_id=report.chat_id,
            text=admin_report_text(report.stats, language, runtime.settings.default_currency),
        ),
    )
