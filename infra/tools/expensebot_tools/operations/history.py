"""`expensebot ops history`: Flower's task list for this system. Job runs (the job_runs ledger) and the
outcome of every message a worker sent (the notifications bookkeeping: sending / sent / failed / dropped /
held, per kind), newest first, filtered and paged, in one SQL statement per page.

Filters, each narrowing what is shown:
- `--job JOB`: the job's runs and the messages its tasks send; `--task TASK`: the task's job's runs and the
  messages the task sends (Task.sends names the kinds);
- `--kind KIND`, `--chat ID`, `--user ID`: messages only (a run has no kind, chat or user);
- `--status a,b`: a run is running, stale (its lease ran out: the attempt died), succeeded or failed; a
  message sending, sent, failed, dropped (the chat is gone) or held (a 429 held it back);
- `--since`, `--until` (24h, 7d back from now, or ISO; the app's zone) on when a run started or a message
  was first claimed; `--month YYYY-MM` the same for the month, except that a month's report
  (monthly_report) belongs to the month it reports, whenever it went out (a catch-up sends it the next day).
Paging: `--limit` rows a page, `--page N`, or `--before CURSOR` (printed under each page; stable while new
rows arrive).

`ops history missing [--month YYYY-MM | --run ID]`: the users the monthly reports' own rule
(monthly_reports.OWED_A_REPORT: an active user with an expense in the month) says were owed the month's
report, plus those the job planned who have since been deactivated (a dropped message deactivates its user),
who have no sent report: each with what became of it (no message at all, or failed / dropped / held).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from expensebot_tools.console import EXIT_OK, EXIT_PROBLEM, CliError, opened_runtime, print_json, print_table
from expensebot_tools.operations.periods import parse_moment, parse_month

RUN_STATUSES = ("running", "stale", "succeeded", "failed")
MESSAGE_STATUSES = ("sending", "sent", "failed", "dropped", "held")

# One statement per page: both sources filtered by the same parameters (a NULL parameter filters nothing),
# merged newest first; the keyset condition serves `--before`.
_HISTORY = """
SELECT * FROM (
    SELECT 'run' AS source, r.id, r.started_at AS at, r.job, NULL::text AS kind,
           CASE WHEN {lease_ran_out} THEN 'stale' ELSE r.status END AS status,
           NULL::bigint AS chat_id, NULL::bigint AS user_id, r.attempts, r.slot, r.finished_at AS done_at,
           r.error, r.planned, r.enqueued, r.details, NULL::text AS dedupe_key
      FROM job_runs r
     WHERE %(runs)s
       AND (%(jobs)s::text[] IS NULL OR r.job = ANY(%(jobs)s::text[]))
       AND (%(since)s::timestamptz IS NULL OR r.started_at >= %(since)s)
       AND (%(until)s::timestamptz IS NULL OR r.started_at < %(until)s)
       AND (%(month_start)s::timestamptz IS NULL
            OR (r.started_at >= %(month_start)s AND r.started_at < %(month_end)s))
    UNION ALL
    SELECT 'message', n.id, n.created_at, NULL, n.kind, n.status, n.chat_id, n.user_id, n.attempts, NULL,
           n.sent_at, n.last_error, NULL, NULL, NULL, n.dedupe_key
      FROM notifications n
     WHERE %(messages)s
       AND (%(kinds)s::text[] IS NULL OR n.kind = ANY(%(kinds)s::text[]))
       AND (%(chat)s::bigint IS NULL OR n.chat_id = %(chat)s)
       AND (%(user)s::bigint IS NULL OR n.user_id = %(user)s)
       AND (%(since)s::timestamptz IS NULL OR n.created_at >= %(since)s)
       AND (%(until)s::timestamptz IS NULL OR n.created_at < %(until)s)
       AND (%(month_start)s::timestamptz IS NULL
            OR CASE WHEN n.kind = %(report_kind)s THEN n.dedupe_key LIKE %(report_key_pattern)s
                    ELSE n.created_at >= %(month_start)s AND n.created_at < %(month_end)s END)
) h
 WHERE (%(statuses)s::text[] IS NULL OR h.status = ANY(%(statuses)s::text[]))
   AND (%(before_at)s::timestamptz IS NULL
        OR (h.at, h.source, h.id) < (%(before_at)s, %(before_source)s, %(before_id)s))
 ORDER BY h.at DESC, h.source DESC, h.id DESC
 LIMIT %(limit)s OFFSET %(offset)s
"""


@dataclass(frozen=True)
class Filters:
    jobs: list[str] | None = None  # runs of these jobs (None: any)
    kinds: list[str] | None = None  # messages of these kinds (None: any)
    runs: bool = True  # whether runs can match at all
    messages: bool = True
    statuses: list[str] | None = None
    chat: int | None = None
    user: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    month: tuple[datetime, datetime] | None = None


def _task_kinds(job: str) -> list[str]:
    from expensebot.tasks import registry

    return sorted({kind for task in registry().values() if task.job == job for kind in task.sends})


def _job_of_kind() -> dict[str, str | None]:
    from expensebot.tasks import registry

    return {kind: task.job for task in registry().values() for kind in task.sends}


def filters_from(args: argparse.Namespace, tz: Any, now: datetime) -> Filters:
    """The filters the options ask for; an option that only messages have (kind, chat, user) leaves the runs
    out, and one that names a job or task keeps its runs and the messages its tasks send."""
    from expensebot.scheduling import jobs
    from expensebot.tasks import lookup

    job_names: list[str] | None = None
    kinds: list[str] | None = None
    runs = messages = True
    if args.job:
        if args.job not in jobs():
            raise CliError(f"unknown job {args.job!r}; jobs are {', '.join(sorted(jobs()))}")
        job_names, kinds = [args.job], _task_kinds(args.job)
    if args.task:
        task = lookup(args.task)
        task_jobs = [task.job] if task.job else []
        job_names = task_jobs if job_names is None else [j for j in job_names if j in task_jobs]
        kinds = list(task.sends) if kinds is None else [k for k in kinds if k in task.sends]
    if args.kind:
        wanted = [k.strip() for k in args.kind.split(",") if k.strip()]
        kinds = wanted if kinds is None else [k for k in kinds if k in wanted]
        runs = False
    if args.chat is not None or args.user is not None:
        runs = False
    statuses = None
    if args.status:
        statuses = [s.strip() for s in args.status.split(",") if s.strip()]
        unknown = sorted(set(statuses) - set(RUN_STATUSES) - set(MESSAGE_STATUSES))
        if unknown:
            raise CliError(f"unknown status {', '.join(unknown)}; a run is {', '.join(RUN_STATUSES)}, "
                           f"a message {', '.join(MESSAGE_STATUSES)}")
    if job_names == []:
        runs = False
    if kinds == []:
        messages = False
    return Filters(
        jobs=job_names, kinds=kinds, runs=runs, messages=messages, statuses=statuses, chat=args.chat,
        user=args.user,
        since=parse_moment(args.since, tz, now, "--since") if args.since else None,
        until=parse_moment(args.until, tz, now, "--until") if args.until else None,
        month=parse_month(args.month, tz) if args.month else None,
    )


def parse_cursor(text: str | None, tz: Any) -> tuple[datetime | None, str | None, int | None]:
    """`--before` is the last row of a page: `<ISO time>~<run|message>~<id>`."""
    if not text:
        return None, None, None
    try:
        at, source, row_id = text.split("~")
        moment = datetime.fromisoformat(at)
        if source not in ("run", "message"):
            raise ValueError(source)
        return (moment if moment.tzinfo else moment.replace(tzinfo=tz)), source, int(row_id)
    except ValueError:
        raise CliError(f"--before {text!r} is not a cursor printed by `ops history`") from None


def cursor_of(row: dict[str, Any]) -> str:
    return f"{row['at'].isoformat()}~{row['source']}~{row['id']}"


def history_rows(runtime: Any, filters: Filters, *, limit: int, offset: int = 0,
                 before: str | None = None) -> list[dict[str, Any]]:
    """Up to `limit` rows of runs and messages, newest first, after `offset` rows or the `before` cursor."""
    from expensebot.jobs.monthly_reports import REPORT_KIND, monthly_report_key
    from expensebot.scheduling import lease_parameters, lease_ran_out

    before_at, before_source, before_id = parse_cursor(before, runtime.settings.tz)
    month_start, month_end = filters.month or (None, None)
    params = {
        **lease_parameters(runtime),
        "runs": filters.runs, "messages": filters.messages, "jobs": filters.jobs, "kinds": filters.kinds,
        "statuses": filters.statuses, "chat": filters.chat, "user": filters.user,
        "since": filters.since, "until": filters.until, "month_start": month_start, "month_end": month_end,
        "report_kind": REPORT_KIND,
        # A month's report is keyed by its month; a multi-part report's later parts by `<key>#<n>`.
        "report_key_pattern": monthly_report_key("%", f"{month_start:%Y-%m}") + "%" if month_start else None,
        "before_at": before_at, "before_source": before_source, "before_id": before_id,
        "limit": limit, "offset": 0 if before else offset,
    }
    rows = [dict(row) for row in runtime.db.fetch_all(_HISTORY.format(lease_ran_out=lease_ran_out(table="r")),
                                                      params)]
    jobs_of = _job_of_kind()
    for row in rows:
        if row["source"] == "message":
            row["job"] = jobs_of.get(row["kind"])
    return rows


def _when(value: datetime | None, tz: Any) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _what(row: dict[str, Any]) -> str:
    if row["source"] == "run":
        details = ", ".join(f"{k}={v}" for k, v in (row["details"] or {}).items())
        counts = f"planned {row['planned']}, enqueued {row['enqueued']}" if row["planned"] is not None else ""
        return "; ".join(part for part in (counts, details) if part)
    return row["dedupe_key"] or ""


def cmd_history(args: argparse.Namespace) -> int:
    if args.view == "missing":
        return cmd_missing(args)
    if args.limit < 1 or args.page < 1:
        raise CliError("--limit and --page count from 1")
    if args.before and args.page != 1:
        raise CliError("use either --page or --before")
    with opened_runtime() as runtime:
        tz = runtime.settings.tz
        filters = filters_from(args, tz, runtime.clock.now())
        # One row more than the page, to know whether another page follows.
        rows = history_rows(runtime, filters, limit=args.limit + 1, offset=(args.page - 1) * args.limit,
                            before=args.before)
    more = len(rows) > args.limit
    rows = rows[: args.limit]
    following = cursor_of(rows[-1]) if more and rows else None
    if args.json:
        print_json({"rows": rows, "next_before": following, "page": None if args.before else args.page})
        return 0
    print_table(
        f"History, newest first (times in {tz.key}){'' if args.before else f'; page {args.page}'}",
        ["when", "what", "id", "job", "kind", "status", "tries", "chat", "slot / sent", "error, or details"],
        [[_when(r["at"], tz), r["source"], r["id"], r["job"] or "", r["kind"] or "", r["status"], r["attempts"],
          r["chat_id"], _when(r["slot"] if r["source"] == "run" else r["done_at"], tz),
          r["error"] or _what(r)] for r in rows],
    )
    if following:
        print(f"more: --page {args.page + 1}, or --before '{following}'")
    elif not rows:
        print("nothing matches")
    return 0


# --- who is owed a message and has none ------------------------------------------------------------------

# One statement per page. The owed: the job's rule now, or the job planned them (their report is recorded,
# or its message claimed) even if the rule no longer holds (a dropped message deactivates its user). Missing:
# no part-one message sent under the report's key.
_MISSING_REPORTS = """
SELECT u.user_id, u.chat_id, u.username, u.first_name, u.is_active, u.deactivated_reason,
       n.status AS message_status, n.attempts, n.created_at, n.last_error,
       EXISTS (SELECT 1 FROM monthly_reports r WHERE r.user_id = u.user_id AND r.month = %(month)s) AS recorded
  FROM users u
  LEFT JOIN notifications n ON n.dedupe_key = %(key_head)s || u.user_id || %(key_tail)s
 WHERE (({owed})
        OR n.id IS NOT NULL
        OR EXISTS (SELECT 1 FROM monthly_reports r WHERE r.user_id = u.user_id AND r.month = %(month)s))
   AND n.status IS DISTINCT FROM 'sent'
 ORDER BY u.user_id
 LIMIT %(limit)s OFFSET %(offset)s
"""


def _months_of_run(runtime: Any, run_id: int) -> list[str]:
    from expensebot.jobs.monthly_reports import JOB

    rows = runtime.db.fetch_all("SELECT job, details FROM job_runs WHERE id = %s", (run_id,))
    if not rows:
        raise CliError(f"no job run {run_id} (`ops history --job {JOB}` lists them)")
    run = rows[0]
    if run["job"] != JOB:
        raise CliError(f"run {run_id} is a run of {run['job']}; who was owed a message is known for {JOB}")
    details = run["details"] or {}
    months = [details[key] for key in ("caught_up", "month") if details.get(key)]
    if not months:
        raise CliError(f"run {run_id} planned no month's reports ({details.get('skipped') or 'no month recorded'})")
    return months


def missing_rows(runtime: Any, month: date, *, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    from expensebot.jobs.monthly_reports import OWED_A_REPORT, month_parameters, monthly_report_key

    key_head, key_tail = monthly_report_key("\0", f"{month:%Y-%m}").split("\0")
    params = {**month_parameters(runtime, month), "key_head": key_head, "key_tail": key_tail,
              "limit": limit, "offset": offset}
    return [dict(row) for row in runtime.db.fetch_all(_MISSING_REPORTS.format(owed=OWED_A_REPORT), params)]


def cmd_missing(args: argparse.Namespace) -> int:
    from expensebot.jobs.monthly_reports import REPORT_KIND

    if args.kind not in (None, REPORT_KIND):
        raise CliError(f"who was owed a message is known for --kind {REPORT_KIND} (the monthly reports' rule)")
    if args.limit < 1 or args.page < 1:
        raise CliError("--limit and --page count from 1")
    with opened_runtime() as runtime:
        tz = runtime.settings.tz
        if args.run is not None:
            months = _months_of_run(runtime, args.run)
            if args.month:
                if args.month not in months:
                    raise CliError(f"run {args.run} reported {', '.join(months)}, not {args.month}")
                months = [args.month]
            if len(months) > 1:
                raise CliError(f"run {args.run} reported {' and '.join(months)}: add --month to pick one")
            month_text = months[0]
        elif args.month:
            month_text = args.month
        else:
            raise CliError("say which month: --month YYYY-MM, or --run ID of a send_monthly_reports run")
        month = parse_month(month_text, tz)[0].date()
        rows = missing_rows(runtime, month, limit=args.limit + 1, offset=(args.page - 1) * args.limit)
    more = len(rows) > args.limit
    rows = rows[: args.limit]
    if args.json:
        print_json({"month": month_text, "kind": REPORT_KIND, "users": rows, "page": args.page, "more": more})
        return EXIT_PROBLEM if rows else EXIT_OK
    print_table(
        f"Owed the {month_text} report ({REPORT_KIND}) and not sent it: page {args.page}",
        ["user", "chat", "name", "active", "message", "attempts", "first tried", "error"],
        [[r["user_id"], r["chat_id"], r["username"] or r["first_name"] or "",
          "yes" if r["is_active"] else f"no: {r['deactivated_reason'] or ''}",
          r["message_status"] or ("none (recorded, never claimed)" if r["recorded"] else "none"),
          r["attempts"] or "", _when(r["created_at"], tz), r["last_error"] or ""] for r in rows],
    )
    if more:
        print(f"more: --page {args.page + 1}")
    elif not rows and args.page == 1:
        print(f"every user owed the {month_text} report has it")
    # Users without their report are a problem found, as doctor's are: exit 1 lets a script alert on it.
    return EXIT_PROBLEM if rows else EXIT_OK


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def add_parser(sub: Any) -> None:
    history = sub.add_parser(
        "history", help="job runs and message outcomes, newest first, filtered and paged (Flower's task list); "
                        "`history missing`: who was owed a month's report and has none")
    history.add_argument("view", nargs="?", choices=("list", "missing"), default="list",
                         help="list (default): runs and messages; missing: the users owed a report without one")
    history.add_argument("--job", help="a job's runs and the messages its tasks send")
    history.add_argument("--task", help="a task's messages (and its job's runs)")
    history.add_argument("--status", help="comma-separated: running, stale, succeeded, failed (runs); sending, "
                                          "sent, failed, dropped, held (messages)")
    history.add_argument("--kind", help="messages of these kinds (comma-separated), e.g. monthly_report, "
                                        "budget_alert, recurring_notice, admin_report, report, debug")
    history.add_argument("--chat", type=_whole_number, help="messages to this chat id")
    history.add_argument("--user", type=_whole_number, help="messages to this user id")
    history.add_argument("--since", help="from this time: 24h, 7d (back from now) or ISO (no zone: the app's)")
    history.add_argument("--until", help="before this time: 24h, 7d (back from now) or ISO (no zone: the app's)")
    history.add_argument("--month", help="YYYY-MM in the app's zone; a monthly_report belongs to the month it "
                                         "reports; with missing: the month whose reports to check")
    history.add_argument("--run", type=_whole_number, help="with missing: the send_monthly_reports run (its id) "
                                                           "whose month to check")
    history.add_argument("--limit", type=_whole_number, default=50, help="rows a page (default 50)")
    history.add_argument("--page", type=_whole_number, default=1, help="the page, from 1 (default 1)")
    history.add_argument("--before", help="the rows after this cursor (printed under a page): stable paging")
    history.add_argument("--json", action="store_true", help="print the rows as JSON")
    history.set_defaults(func=cmd_history)
