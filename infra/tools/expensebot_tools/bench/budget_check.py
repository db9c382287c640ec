"""budget_check: `plan_budget_alerts` (one statement for every user and every period: day, week, month)
against the per-user loop a straightforward Django/Celery task would run: for each active user, select the
budgets; for each budget, select its period's sum in its currency and the alerts already sent in the
period. Both must find the same (budget, threshold) set.

Goals (issues 4 and 15): the set-based plan finds every crossing for 100k users, over the three periods, in
under 2 s here, and at least 50x faster than the loop. With `--naive-sample N` the loop is timed over N
random users and its time for all users extrapolated (the JSON line then says `naive_extrapolated: true`)."""

from __future__ import annotations

import random
import statistics
import time as clock
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg2

from expensebot_tools.bench import BenchContext, benchmark
from expensebot_tools.bench.explain import captured_statements, print_plans

TIMED_RUNS = 5
PERIODS = ("month", "week", "day")


def period_starts(as_of: datetime, tz: ZoneInfo) -> dict[str, datetime]:
    """The first instant of the day, the week (from Monday) and the month holding `as_of`, in the zone: what
    a per-user task computes in Python (Django's timezone.localtime) before it queries."""
    day = as_of.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    week = datetime.combine(day.date() - timedelta(days=day.weekday()), time.min, tzinfo=tz)
    return {"day": day, "week": week, "month": day.replace(day=1)}


def naive_plan(
    url: str, timezone: str, user_ids: Sequence[int], as_of: datetime, thresholds: Sequence[int],
    on_user: object = None,
) -> tuple[set[tuple[int, int]], int]:
    """The per-user loop: the alerts it would send as (budget_id, threshold), and the queries it ran.
    Autocommit, one query at a time, as Django runs `Budget.objects.filter(user=u)` and `.aggregate()`."""
    from expensebot.jobs.budget_limits import highest_new_threshold

    starts = period_starts(as_of, ZoneInfo(timezone))
    conn = psycopg2.connect(url, options=f"-c timezone={timezone}")
    conn.autocommit = True
    found: set[tuple[int, int]] = set()
    queries = 0
    try:
        with conn.cursor() as cur:
            for user_id in user_ids:
                cur.execute("SELECT id, period, category, currency, amount FROM budgets WHERE user_id = %s"
                            " ORDER BY id", (user_id,))
                queries += 1
                for budget_id, period, category, currency, limit in cur.fetchall():
                    start = starts[period]
                    if category is None:
                        cur.execute(
                            "SELECT COALESCE(SUM(amount), 0) FROM expenses"
                            " WHERE user_id = %s AND currency = %s AND spent_at >= %s AND spent_at <= %s",
                            (user_id, currency, start, as_of),
                        )
                    else:
                        cur.execute(
                            "SELECT COALESCE(SUM(amount), 0) FROM expenses WHERE user_id = %s AND currency = %s"
                            " AND category = %s AND spent_at >= %s AND spent_at <= %s",
                            (user_id, currency, category, start, as_of),
                        )
                    spent: Decimal = cur.fetchone()[0]
                    cur.execute("SELECT threshold FROM budget_alerts WHERE budget_id = %s AND period_start = %s",
                                (budget_id, start.date()))
                    already = max((row[0] for row in cur.fetchall()), default=None)
                    queries += 2
                    threshold = highest_new_threshold(spent, limit, thresholds, already)
                    if threshold is not None:
                        found.add((budget_id, threshold))
                if callable(on_user):
                    on_user()
    finally:
        conn.close()
    return found, queries


@benchmark("budget_check")
def run(ctx: BenchContext) -> None:
    """check_budget_limits: the set-based plan vs the per-user loop (goals: < 2 s, >= 50x)"""
    from expensebot.jobs.budget_limits import plan_budget_alerts

    runtime = ctx.runtime()
    as_of = ctx.dataset.now
    try:
        started = clock.perf_counter()
        alerts = plan_budget_alerts(runtime, as_of)
        first_seconds = clock.perf_counter() - started
        timings = []
        for _ in range(TIMED_RUNS):
            started = clock.perf_counter()
            again = plan_budget_alerts(runtime, as_of)
            timings.append(clock.perf_counter() - started)
            if again != alerts:
                raise AssertionError("the set-based plan changed between two runs on the same data")
        set_based = statistics.median(timings)
        if ctx.options.explain:
            with captured_statements(runtime.db) as statements:
                plan_budget_alerts(runtime, as_of)
            print_plans(ctx.console, runtime.db, "plan_budget_alerts", statements)

        users = [row["user_id"] for row in runtime.db.fetch_all(
            "SELECT user_id FROM users WHERE is_active ORDER BY user_id")]
        (counts,) = runtime.db.fetch_all(
            "SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM budgets) AS budgets")
        per_period = {row["period"]: row["n"] for row in runtime.db.fetch_all(
            "SELECT period, count(*) AS n FROM budgets GROUP BY period")}
    finally:
        runtime.db.close()

    sample = ctx.options.naive_sample
    extrapolated = sample is not None and sample < len(users)
    timed_users = sorted(random.Random(ctx.options.seed).sample(users, sample)) if extrapolated else users
    with ctx.progress() as progress:
        task = progress.add_task("naive per-user loop", total=len(timed_users))
        started = clock.perf_counter()
        naive_found, queries = naive_plan(
            ctx.dataset.url, ctx.dataset.timezone, timed_users, as_of, runtime.settings.budget_thresholds,
            on_user=lambda: progress.advance(task),
        )
        naive_seconds = clock.perf_counter() - started

    in_scope = set(timed_users)
    set_found = {(a.budget_id, a.threshold) for a in alerts if a.user_id in in_scope}
    if set_found != naive_found:
        raise AssertionError(
            f"the two plans disagree: {len(set_found - naive_found)} only in the set-based plan "
            f"(e.g. {sorted(set_found - naive_found)[:3]}), {len(naive_found - set_found)} only in the loop "
            f"(e.g. {sorted(naive_found - set_found)[:3]})"
        )
    naive_all = naive_seconds * len(users) / len(timed_users) if timed_users else naive_seconds
    ratio = naive_all / set_based if set_based > 0 else float("inf")
    ctx.record({
        "users": counts["users"],
        "active_users": len(users),
        "budgets": counts["budgets"],
        **{f"budgets_{period}": per_period.get(period, 0) for period in PERIODS},
        "alerts_planned": len(alerts),
        **{f"alerts_{period}": sum(1 for a in alerts if a.period == period) for period in PERIODS},
        "set_based_first_seconds": round(first_seconds, 4),
        "set_based_seconds": round(set_based, 4),
        "set_based_runs": TIMED_RUNS,
        "naive_users_timed": len(timed_users),
        "naive_queries": queries,
        "naive_seconds_timed": round(naive_seconds, 3),
        "naive_extrapolated": extrapolated,
        "naive_seconds": round(naive_all, 3),
        "ratio": round(ratio, 1),
        "same_alerts": True,
        "goal_under_2s": set_based < 2.0,
        "goal_50x": ratio >= 50,
    }, note="budget_check: set_based_seconds is the median of the timed runs after a first (cold) one; "
             "ratio = naive_seconds / set_based_seconds")
