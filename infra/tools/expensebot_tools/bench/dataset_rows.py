"""The benchmark data set's primitives and its money beyond expenses: users' currencies, incomes, and
budgets per period with the alerts already sent (the shares are described in dataset.py, which draws
everything else and calls these writers with its one `random.Random`, so `--seed` still decides every row)."""

from __future__ import annotations

import calendar
import io
import math
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from rich.progress import Progress

THRESHOLDS = (80, 90, 100)  # the default BUDGET_THRESHOLDS: the alert history is made for these
NULL = "\\N"  # COPY's text format for NULL

# (ISO code, share of users, roughly how many roubles one unit is worth: amounts are drawn in roubles and
# scaled, so that a user's numbers look like their currency's)
CURRENCY_SHARES: tuple[tuple[str, float, float], ...] = (("RUB", 84, 1.0), ("KZT", 7, 0.2), ("USD", 5, 90.0),
                                                      ("EUR", 4, 100.0))
SECOND_CURRENCY_SHARE = 0.02  # expenses in another currency than the user's own
_INCOME_MONTHS = 6  # incomes cover this many months before "now", this one included
# (category, description, median in roubles, log-normal sigma) of the incomes beside a salary
_OTHER_INCOMES: tuple[tuple[str, str, float, float], ...] = (
    ("bonus", "премия", 40_000, 0.6),
    ("freelance", "фриланс", 25_000, 0.8),
    ("cashback", "кешбэк", 900, 0.7),
    ("gift", "подарок", 5_000, 0.9),
)


@dataclass
class GeneratedUser:
    user_id: int
    created_at: datetime
    weight: float
    language: str
    active: bool
    last_seen_at: datetime
    currency: int  # index into CURRENCY_SHARES


def scaled(kopecks: int, currency: int) -> int:
    """An amount drawn in roubles (kopecks) in the currency's minor units (at least one unit)."""
    return max(100, int(kopecks / CURRENCY_SHARES[currency][2]))


def money_text(kopecks: int) -> str:
    return f"{kopecks // 100}.{kopecks % 100:02d}"


def copy_rows(cur: Any, target: str, buffer: io.StringIO) -> None:
    buffer.seek(0)
    cur.copy_expert(f"COPY {target} FROM STDIN", buffer)
    buffer.seek(0)
    buffer.truncate()


def write_incomes(cur: Any, rng: random.Random, users: list[GeneratedUser], now: datetime,
                   progress: Progress | None) -> None:
    """The incomes of the last _INCOME_MONTHS months, in time order: a monthly salary on the user's pay day
    (or in two halves, on the 10th and the 25th) for 65 % of users, and now and then another income."""
    r = rng.random
    tz = now.tzinfo
    months: list[date] = [now.date().replace(day=1)]
    while len(months) < _INCOME_MONTHS:
        months.insert(0, (months[0] - timedelta(days=1)).replace(day=1))
    rows: list[tuple[datetime, int, int, str, str]] = []
    for index, user in enumerate(users):
        salaried = r() < 0.65
        halves = salaried and r() < 0.125
        pay_day = (5, 10, 15, 20, 25, 28)[int(r() * 6)]
        salary = scaled(int(math.exp(rng.gauss(math.log(90_000), 0.5))) // 1_000 * 100_000, user.currency)
        for month in months:
            last_day = calendar.monthrange(month.year, month.month)[1]
            paid: list[tuple[int, int, str, str]] = []
            if salaried:
                if halves:
                    paid += [(10, salary // 2, "salary", "аванс"), (25, salary - salary // 2, "salary", "зарплата")]
                else:
                    paid.append((min(pay_day, last_day), salary, "salary", "зарплата"))
            if r() < (1 / 6 if salaried else 0.1):
                category, description, median, sigma = _OTHER_INCOMES[int(r() * len(_OTHER_INCOMES))]
                kopecks = scaled(int(math.exp(rng.gauss(math.log(median), sigma))) * 100, user.currency)
                paid.append((1 + int(r() * last_day), kopecks, category, description))
            for day, kopecks, category, description in paid:
                received = datetime(month.year, month.month, day, 9, tzinfo=tz) + timedelta(seconds=int(r() * 36_000))
                if user.created_at <= received <= now:
                    rows.append((received, index, kopecks, category, description))
    rows.sort(key=lambda row: (row[0], row[1]))
    task = progress.add_task("incomes", total=len(rows)) if progress is not None else None
    buffer = io.StringIO()
    for income_id, (received, index, kopecks, category, description) in enumerate(rows, start=1):
        user = users[index]
        stamp = received.isoformat()
        buffer.write(f"{income_id}\t{user.user_id}\t{money_text(kopecks)}\t{CURRENCY_SHARES[user.currency][0]}\t"
                     f"{category}\t{description}\t{stamp}\t{stamp}\n")
    copy_rows(cur, "incomes (id, user_id, amount, currency, category, description, received_at, created_at)", buffer)
    if progress is not None and task is not None:
        progress.advance(task, len(rows))


# How a period's budget is drawn: its share of the three earlier months' spending (usual = months' total /
# divisor), the step its amount is rounded to (minor units) and, for a user without history, the share of a
# month's made-up budget.
_BUDGET_SHAPE: dict[str, tuple[int, int]] = {"month": (3, 10_000), "week": (13, 1_000), "day": (90, 1_000)}
_NO_HISTORY_DIVISOR = {"month": 1, "week": 4, "day": 30}


def write_budgets(cur: Any, rng: random.Random, users: list[GeneratedUser], earlier_months: dict[int, dict[str, int]],
                   spent_now: dict[str, dict[int, dict[str, int]]], now: datetime,
                   period_starts: dict[str, date]) -> None:
    """Budgets in the user's currency near their usual spending (x0.7-1.5 of the last three months'
    average for the period): a month's for 30 % of users (and category budgets for some), a week's for 8 %,
    a day's for 2 % (cafés or everything); and the alerts already sent in the current period for about half
    of those over a threshold."""
    r = rng.random
    budgets = io.StringIO()
    alerts = io.StringIO()
    budget_id = 0

    def add(user_index: int, period: str, category: str | None, earlier: int) -> None:
        nonlocal budget_id
        user = users[user_index]
        divisor, step = _BUDGET_SHAPE[period]
        usual = earlier // divisor
        if usual <= 0:  # no history yet: a round guess, a month's share of 500-3,000 roubles' worth
            usual = scaled((50 + int(r() * 250)) * 10_000, user.currency) // _NO_HISTORY_DIVISOR[period]
        kopecks = max(5 * step, round(usual * (0.7 + 0.8 * r()) / step) * step)
        created = user.created_at + (now - user.created_at) * r()
        budget_id += 1
        budgets.write(f"{budget_id}\t{user.user_id}\t{period}\t{category or NULL}\t{money_text(kopecks)}\t"
                      f"{CURRENCY_SHARES[user.currency][0]}\t{created.isoformat()}\t{created.isoformat()}\n")
        current = spent_now[period].get(user_index, {})
        spent = sum(current.values()) if category is None else current.get(category, 0)
        crossed = [t for t in THRESHOLDS if spent * 100 >= kopecks * t]
        chance = r()
        if not crossed:
            return
        if chance < 0.45 and len(crossed) >= 2:
            alerted = crossed[-2]  # alerted at a lower threshold earlier this period: the next one is due
        elif chance < 0.70:
            alerted = crossed[-1]  # already told about where it stands: nothing new to send
        else:
            return
        alerts.write(f"{budget_id}\t{period_starts[period].isoformat()}\t{alerted}\t{now.isoformat()}\n")

    for index in range(len(users)):
        earlier = earlier_months.get(index, {})
        usual_total = sum(earlier.values())
        has_monthly = r() < 0.30
        if has_monthly:
            add(index, "month", None, usual_total)
        if r() < (0.40 if has_monthly else 0.05):
            favourites = sorted(earlier, key=lambda c: (-earlier[c], c))[: 1 + (r() < 0.4)] or ["cafe"]
            for category in favourites:
                add(index, "month", category, earlier.get(category, 0))
        if r() < 0.08:
            add(index, "week", None, usual_total)
        if r() < 0.02:
            category = "cafe" if r() < 0.5 else None
            add(index, "day", category, usual_total if category is None else earlier.get(category, 0))
    copy_rows(cur, "budgets (id, user_id, period, category, amount, currency, created_at, updated_at)", budgets)
    copy_rows(cur, "budget_alerts (budget_id, period_start, threshold, created_at)", alerts)
