"""The benchmark data set: by default 100,000 users and 5,000,000 expenses, reproducible by seed.

Everything random comes from one `random.Random(seed)`, drawn in a fixed order, and is loaded with COPY,
so the same (users, expenses, seed) gives the same rows on any server. Its shape is that of a real bot's
data a little over two years in:

- the data set's "now" is fixed (31 March 2026, 20:00 in the application's zone: the last day of a
  month, when the monthly report runs), and expenses cover the 790 days before it (~26 months), so
  there are rows older than the 730-day retention for the cleanup;
- users join over time (a third were there before the window opens), so later months are busier; how
  much each user writes is heavy-tailed (Pareto); 15 % write in English; 2 % blocked the bot;
- rows are in time order, as a table filled by the bot is (ids grow with `spent_at`);
- amounts per category are log-normal, 40 % with kopecks; 8 % of users have recurring payments (any day
  1-31), booked as expenses on their due dates up to yesterday, a few with yesterday's booking missing
  (a missed run to catch up) and today's still to do;
- currencies: 84 % of users keep RUB, 7 % KZT, 5 % USD, 4 % EUR (amounts scaled by a rough rate, so a
  coffee is 420 ₽, 4.67 $ or 2,100 ₸); 2 % of expenses are in a second currency (a trip: USD or EUR for a
  rouble user, RUB for the others), which the user's budgets do not count;
- incomes over the six months before "now" (the monthly report's six-month table): 65 % of users record a
  salary every month on their pay day (1 in 8 of them in two halves), and 1 in 6 of those months brings
  another income too (a bonus, freelance work, cashback, a gift);
- budgets in the user's currency: 30 % of users have a month's budget near their usual spending, 8 % a
  week's, 2 % a day's (for cafés or for everything), some have category budgets, and about half the budgets
  over a threshold have already been alerted at one in their period (this month, this week, today).

The data set lives in `.bench/pgdata` (an embedded server) or at `--database-url`, and is reused when it
holds the same (users, expenses, seed) and generator version."""

from __future__ import annotations

import bisect
import calendar
import io
import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from rich.console import Console
from rich.progress import Progress

from expensebot.categories import CATEGORIES
from expensebot_tools.bench import BENCH_DIR, progress_bar
from expensebot_tools.bench.dataset_rows import (
    CURRENCY_SHARES,
    NULL,
    SECOND_CURRENCY_SHARE,
    GeneratedUser,
    copy_rows,
    money_text,
    scaled,
    write_budgets,
    write_incomes,
)
from expensebot_tools.local.stack import EmbeddedPostgres, migrate_database

# Bumped whenever the generator's output changes, so an old data set is not taken for a new one.
GENERATOR_VERSION = 2
DATABASE_NAME = "expensebot_bench"
WINDOW_DAYS = 790
FIRST_USER_ID = 10_000_001

# category: (share of expenses, median amount in roubles, log-normal sigma, descriptions)
_CATEGORY_SHAPE: dict[str, tuple[float, float, float, tuple[str, ...]]] = {
    "groceries": (30, 650, 0.8, ("продукты", "Пятёрочка", "Перекрёсток", "ВкусВилл", "молоко и хлеб", "овощи")),
    "cafe": (22, 420, 0.7, ("кофе", "обед", "ужин в кафе", "пицца", "бизнес-ланч", "coffee")),
    "transport": (17, 280, 0.9, ("такси", "метро", "бензин", "каршеринг", "парковка", "taxi")),
    "housing": (3, 4500, 0.9, ("ЖКХ", "ремонт", "коммуналка", "хозтовары")),
    "health": (6, 1100, 0.9, ("аптека", "стоматолог", "анализы", "врач")),
    "entertainment": (7, 900, 0.9, ("кино", "концерт", "книги", "игры", "театр", "cinema")),
    "clothing": (4, 3200, 0.8, ("одежда", "обувь", "куртка", "джинсы")),
    "communication": (3, 550, 0.5, ("телефон", "интернет", "мобильная связь")),
    "other": (8, 700, 1.1, ("подарок", "разное", "канцтовары", "стрижка")),
}
# (category, description, lowest and highest amount in roubles, days of the month it falls on or None: any)
_RECURRING: tuple[tuple[str, str, int, int, tuple[int, ...] | None], ...] = (
    ("housing", "аренда квартиры", 15_000, 60_000, (1, 5, 10, 25, 28, 30, 31)),
    ("entertainment", "подписка на музыку", 169, 399, None),
    ("entertainment", "онлайн-кинотеатр", 199, 799, None),
    ("communication", "мобильная связь", 300, 1_200, None),
    ("communication", "домашний интернет", 450, 1_100, None),
    ("health", "фитнес-клуб", 1_500, 5_000, None),
    ("other", "кредит", 5_000, 40_000, (5, 15, 20, 29, 31)),
)
_FIRST_NAMES = ("Анна", "Борис", "Вера", "Глеб", "Дарья", "Егор", "Жанна", "Илья", "Ксения", "Лев", "Emma", "John")


@dataclass(frozen=True)
class DatasetSpec:
    users: int = 100_000
    expenses: int = 5_000_000
    seed: int = 1

    def check(self) -> None:
        if self.users < 10:
            raise ValueError(f"a data set needs at least 10 users (got {self.users})")
        if self.expenses < 10 * self.users:
            raise ValueError(f"a data set needs at least 10 expenses per user ({self.users} users: "
                             f"at least {10 * self.users} expenses, got {self.expenses})")


@dataclass(frozen=True)
class Dataset:
    url: str
    spec: DatasetSpec
    now: datetime
    timezone: str
    server_version: str
    generated_now: bool
    generation_seconds: float


def dataset_now(tz: ZoneInfo) -> datetime:
    """The data set's "now": the last day of a month at 20:00, the monthly report's slot."""
    return datetime(2026, 3, 31, 20, 0, tzinfo=tz)


def connect(url: str, timezone: str) -> psycopg2.extensions.connection:
    return psycopg2.connect(url, options=f"-c timezone={timezone}", application_name="expensebot-bench")


_METADATA_DDL = """
CREATE TABLE IF NOT EXISTS bench_dataset (
    id                 integer PRIMARY KEY CHECK (id = 1),
    users              integer NOT NULL,
    expenses           bigint NOT NULL,
    seed               bigint NOT NULL,
    generator_version  integer NOT NULL,
    now                timestamptz NOT NULL,
    timezone           text NOT NULL,
    generated_at       timestamptz NOT NULL,
    generation_seconds double precision NOT NULL,
    set_aside_before   timestamptz  -- set while the cleanup benchmark has the data set's old rows aside
)
"""
SET_ASIDE_TABLE = "bench_set_aside_expenses"


@contextmanager
def open_dataset(spec: DatasetSpec, *, database_url: str | None = None, console: Console | None = None,
                 timezone: str = "Europe/Moscow") -> Iterator[Dataset]:
    """The data set for the block: generated, or reused when it is already there. Without a URL, an
    embedded server in .bench/pgdata (kept between runs, stopped at the end)."""
    console = console or Console()
    server: EmbeddedPostgres | None = None
    url = database_url
    if url is None:
        server = EmbeddedPostgres(data_dir=BENCH_DIR / "pgdata")
        started = time.perf_counter()
        server.start()
        url = server.create_database(DATABASE_NAME)
        _tune_embedded_server(url)
        elapsed = time.perf_counter() - started
        console.print(f"embedded PostgreSQL in {BENCH_DIR / 'pgdata'} (started in {elapsed:.1f} s)")
    try:
        yield ensure_dataset(url, spec, console=console, timezone=timezone)
    finally:
        if server is not None:
            server.stop()


def _tune_embedded_server(url: str) -> None:
    # Loading 5M rows fills the default 1 GB of WAL many times over; checkpoints every few seconds would
    # dominate the load. It also spares the naive single DELETE of the cleanup benchmark a checkpoint
    # storm, which only makes the comparison kinder to the naive way.
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SHOW max_wal_size")
        if cur.fetchone()[0] != "4GB":
            cur.execute("ALTER SYSTEM SET max_wal_size = '4GB'")
            cur.execute("SELECT pg_reload_conf()")
    conn.close()


def ensure_dataset(url: str, spec: DatasetSpec, *, console: Console | None = None,
                   timezone: str = "Europe/Moscow") -> Dataset:
    """Reuses the data set in the database, or generates it there (after migrating the schema). A
    database holding other data is refused before anything is changed in it."""
    spec.check()
    console = console or Console()
    conn = connect(url, timezone)
    try:
        _refuse_foreign_data(conn)
        migrated = migrate_database(url, timezone=timezone)
        if migrated:
            console.print(f"migrations applied: {', '.join(migrated)}")
        now = dataset_now(ZoneInfo(timezone))
        with conn, conn.cursor() as cur:
            cur.execute(_METADATA_DDL)
            cur.execute("SHOW server_version")
            server_version = cur.fetchone()[0]
        restore_set_aside_rows(conn)
        stored = _stored_spec(conn)
        if stored is not None and stored[:4] == (spec.users, spec.expenses, spec.seed, GENERATOR_VERSION) \
                and stored[4] == now and _expense_count(conn) == spec.expenses:
            seconds = stored[5]
            console.print(f"data set reused: {spec.users:,} users, {spec.expenses:,} expenses, seed {spec.seed} "
                          f"(generated earlier in {seconds:.0f} s)")
            return Dataset(url, spec, now, timezone, server_version, generated_now=False, generation_seconds=seconds)
    finally:
        conn.close()
    console.print(f"generating the data set: {spec.users:,} users, {spec.expenses:,} expenses, seed {spec.seed}")
    with progress_bar(console) as progress:
        seconds = generate(url, spec, timezone=timezone, progress=progress)
    console.print(f"data set generated in {seconds:.1f} s ({spec.expenses / seconds:,.0f} expenses/s)")
    return Dataset(url, spec, now, timezone, server_version, generated_now=True, generation_seconds=seconds)


def _stored_spec(conn: psycopg2.extensions.connection) -> tuple[Any, ...] | None:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT users, expenses, seed, generator_version, now, generation_seconds FROM bench_dataset")
        return cur.fetchone()


def _expense_count(conn: psycopg2.extensions.connection) -> int:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM expenses")
        return int(cur.fetchone()[0])


def _refuse_foreign_data(conn: psycopg2.extensions.connection) -> None:
    """The generator empties the database's tables: only a data set of ours, or a database without users
    or expenses, is taken."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('bench_dataset') IS NOT NULL, to_regclass('users') IS NOT NULL,"
                    " to_regclass('expenses') IS NOT NULL")
        ours, has_users, has_expenses = cur.fetchone()
        if ours:
            cur.execute("SELECT EXISTS (SELECT 1 FROM bench_dataset)")
            ours = cur.fetchone()[0]
        holds_data = False
        if has_users:
            cur.execute("SELECT EXISTS (SELECT 1 FROM users)")
            holds_data = cur.fetchone()[0]
        if has_expenses and not holds_data:
            cur.execute("SELECT EXISTS (SELECT 1 FROM expenses)")
            holds_data = cur.fetchone()[0]
    if holds_data and not ours:
        raise SystemExit("expensebot bench: this database holds users or expenses and is not a benchmark data "
                         "set; the generator would empty it. Give --database-url an empty database.")


# --- the cleanup benchmark deletes the data set's old rows: it sets them aside and puts them back ---

def set_aside_rows_older_than(conn: psycopg2.extensions.connection, cutoff: datetime) -> int:
    """Copies the data set's rows older than `cutoff` aside (kept until restored, even across a crash)."""
    with conn, conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {SET_ASIDE_TABLE}")
        cur.execute(f"CREATE TABLE {SET_ASIDE_TABLE} AS SELECT * FROM expenses WHERE spent_at < %s", (cutoff,))
        count = cur.rowcount
        cur.execute("UPDATE bench_dataset SET set_aside_before = %s", (cutoff,))
    return count


def restore_set_aside_rows(conn: psycopg2.extensions.connection) -> int:
    """Puts the data set's old rows back as they were: whatever is older than the cutoff now (fillers the
    cleanup benchmark added, or rows a stopped run left) gives way to the rows set aside."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (SET_ASIDE_TABLE,))
        if not cur.fetchone()[0]:
            return 0
        cur.execute("SELECT set_aside_before FROM bench_dataset")
        row = cur.fetchone()
        if row is not None and row[0] is not None:
            cur.execute("DELETE FROM expenses WHERE spent_at < %s", (row[0],))
        cur.execute(f"INSERT INTO expenses SELECT * FROM {SET_ASIDE_TABLE} ON CONFLICT DO NOTHING")
        restored = cur.rowcount
        cur.execute(f"DROP TABLE {SET_ASIDE_TABLE}")
        cur.execute("UPDATE bench_dataset SET set_aside_before = NULL")
    vacuum(conn, "expenses")
    return restored


def vacuum(conn: psycopg2.extensions.connection, *tables: str) -> None:
    """VACUUM (ANALYZE): what autovacuum does after bulk changes, done now so that a benchmark measures
    index-only scans on an up-to-date visibility map rather than autovacuum's timing."""
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for table in tables:
                cur.execute(f"VACUUM (ANALYZE) {table}")
    finally:
        conn.autocommit = False


# --- the generator ---

@dataclass
class _Recurring:
    id: int
    user_index: int
    day_of_month: int
    kopecks: int
    description: str
    category: str
    active: bool
    created_at: datetime
    booked_until: date  # the last due date that may have been booked


def due_dates(day_of_month: int, first: date, last: date) -> Iterator[date]:
    """A payment's due dates from `first` to `last`: day 29-31 falls on a shorter month's last day."""
    year, month = first.year, first.month
    while True:
        due = date(year, month, min(day_of_month, calendar.monthrange(year, month)[1]))
        if due > last:
            return
        if due >= first:
            yield due
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def generate(url: str, spec: DatasetSpec, *, timezone: str = "Europe/Moscow",
             progress: Progress | None = None) -> float:
    """Empties the database's application tables and fills them with the data set; returns the seconds
    it took (rows, indexes, and the VACUUM ANALYZE after)."""
    spec.check()
    started = time.perf_counter()
    tz = ZoneInfo(timezone)
    now = dataset_now(tz)
    today = now.date()
    first_day = today - timedelta(days=WINDOW_DAYS)
    window_start = datetime.combine(first_day, datetime.min.time(), tzinfo=tz)
    rng = random.Random(spec.seed)
    r = rng.random

    # Users: when they joined, how much they write.
    users: list[GeneratedUser] = []
    span = (now - timedelta(days=1) - window_start).total_seconds()
    currency_cumulative: list[float] = []
    for _, share, _ in CURRENCY_SHARES:
        currency_cumulative.append((currency_cumulative[-1] if currency_cumulative else 0.0) + share)
    for i in range(spec.users):
        if r() < 0.35:
            created = window_start - timedelta(seconds=r() * 365 * 86400)
        else:
            created = window_start + timedelta(seconds=r() * span)
        weight = min(50.0, rng.paretovariate(1.5))
        language = "en" if r() < 0.15 else "ru"
        active = r() >= 0.02
        last_seen = max(created, now - timedelta(seconds=rng.expovariate(1 / (7 * 86400))))
        currency = bisect.bisect_right(currency_cumulative, r() * currency_cumulative[-1])
        users.append(GeneratedUser(FIRST_USER_ID + i, created, weight, language, active, last_seen, currency))
    # A trip abroad: a rouble user spends in USD (even ids) or EUR (odd ids), the others in roubles.
    second_currency = [(2 if u.user_id % 2 == 0 else 3) if u.currency == 0 else 0 for u in users]

    # Recurring payments and their bookings (expenses on the due dates).
    payments: list[_Recurring] = []
    bookings: dict[date, list[_Recurring]] = {}
    yesterday = today - timedelta(days=1)
    for index, user in enumerate(users):
        if r() >= 0.08:
            continue
        for _ in range(1 + int(r() * 3)):
            category, description, low, high, days = _RECURRING[int(r() * len(_RECURRING))]
            day = days[int(r() * len(days))] if days else 1 + int(r() * 31)
            kopecks = scaled((low + int(r() * (high - low))) * 100 + (90 if r() < 0.3 else 0), user.currency)
            created = user.created_at + (now - timedelta(days=1) - user.created_at) * r()
            active = r() >= 0.15
            if active:
                # 2 % missed yesterday's run (the planner catches up); today's are for the planner.
                booked_until = today - timedelta(days=2) if r() < 0.02 else yesterday
            else:
                booked_until = (created + (now - created) * r()).date()
            payment = _Recurring(len(payments) + 1, index, day, kopecks, description, category, active,
                                 created, booked_until)
            payments.append(payment)
            for due in due_dates(day, max(created.astimezone(tz).date(), first_day), booked_until):
                bookings.setdefault(due, []).append(payment)
    booked = sum(len(day_bookings) for day_bookings in bookings.values())
    spontaneous = spec.expenses - booked
    if spontaneous < spec.expenses // 2:
        raise ValueError(f"{spec.expenses} expenses are too few for {spec.users} users' recurring bookings")

    # Expenses per day: in proportion to the weight of the users who had joined, busier at weekends.
    order = sorted(range(spec.users), key=lambda i: users[i].created_at)
    joined_at = [users[i].created_at for i in order]
    cumulative: list[float] = []
    total_weight = 0.0
    for i in order:
        total_weight += users[i].weight
        cumulative.append(total_weight)
    days = [first_day + timedelta(days=n) for n in range(WINDOW_DAYS + 1)]
    day_starts = [datetime.combine(day, datetime.min.time(), tzinfo=tz) for day in days]
    joined_by_day = [bisect.bisect_left(joined_at, start) for start in day_starts]
    day_weights = []
    for day, start, joined in zip(days, day_starts, joined_by_day, strict=True):
        weight = cumulative[joined - 1] if joined else 0.0
        weight *= 1.15 if day.weekday() >= 5 else 1.0
        if day == today:
            weight *= (now - start).total_seconds() / 86400  # today is not over
        day_weights.append(weight)
    weight_sum = sum(day_weights)
    per_day: list[int] = []
    running, assigned = 0.0, 0
    for weight in day_weights:
        running += weight
        upto = math.floor(spontaneous * running / weight_sum)
        per_day.append(upto - assigned)
        assigned = upto
    per_day[-1] += spontaneous - assigned

    categories = list(CATEGORIES)
    shapes = [_CATEGORY_SHAPE.get(c, _CATEGORY_SHAPE["other"]) for c in categories]
    category_cumulative: list[float] = []
    acc = 0.0
    for shape in shapes:
        acc += shape[0]
        category_cumulative.append(acc)
    mus = [math.log(shape[1]) for shape in shapes]
    sigmas = [shape[2] for shape in shapes]
    descriptions = [shape[3] for shape in shapes]

    # Month totals the budgets are set from (the three months before this one) and checked against.
    this_month = today.replace(day=1)
    before = this_month
    for _ in range(3):
        before = (before - timedelta(days=1)).replace(day=1)
    earlier_months: dict[int, dict[str, int]] = {}
    this_months: dict[int, dict[str, int]] = {}
    # This week's (from Monday) and today's spending, for the week's and the day's budgets.
    week_start = today - timedelta(days=today.weekday())
    this_weeks: dict[int, dict[str, int]] = {}
    todays: dict[int, dict[str, int]] = {}

    conn = connect(url, timezone)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(_METADATA_DDL)
            _empty_application_tables(cur)
            cur.execute("UPDATE bench_dataset SET set_aside_before = NULL")
            cur.execute("DELETE FROM bench_dataset")
            try:
                # The rows are consistent by construction: skip the per-row foreign-key checks (superuser).
                cur.execute("SAVEPOINT replica")
                cur.execute("SET LOCAL session_replication_role = replica")
            except psycopg2.errors.InsufficientPrivilege:
                cur.execute("ROLLBACK TO SAVEPOINT replica")
            cur.execute("SET LOCAL maintenance_work_mem = '512MB'")
            secondary = _secondary_indexes(cur, "expenses")
            for name, _ in secondary:
                cur.execute(f'DROP INDEX "{name}"')

            buffer = io.StringIO()
            for user in users:
                buffer.write(
                    f"{user.user_id}\t{user.user_id}\tuser{user.user_id - FIRST_USER_ID + 1}\t"
                    f"{_FIRST_NAMES[user.user_id % len(_FIRST_NAMES)]}\t{user.language}\t"
                    f"{'t' if user.active else 'f'}\t{NULL if user.active else 'blocked'}\t"
                    f"{user.created_at.isoformat()}\t{user.last_seen_at.isoformat()}\t"
                    f"{CURRENCY_SHARES[user.currency][0]}\n"
                )
            copy_rows(cur, "users (user_id, chat_id, username, first_name, language_code, is_active, "
                       "deactivated_reason, created_at, last_seen_at, currency)", buffer)
            for p in payments:
                buffer.write(f"{p.id}\t{users[p.user_index].user_id}\t{p.day_of_month}\t{money_text(p.kopecks)}\t"
                             f"{p.description}\t{p.category}\t{'t' if p.active else 'f'}\t"
                             f"{p.created_at.isoformat()}\t{CURRENCY_SHARES[users[p.user_index].currency][0]}\n")
            copy_rows(cur, "recurring_payments (id, user_id, day_of_month, amount, description, category, is_active, "
                       "created_at, currency)", buffer)

            task = progress.add_task("expenses", total=spec.expenses) if progress else None
            expense_id = 0
            pending = 0
            for day, start, joined, count in zip(days, day_starts, joined_by_day, per_day, strict=True):
                day_seconds = int((now - start).total_seconds()) if day == today else 86400
                offset = start.replace(hour=12).strftime("%z")
                prefix = f"{day.isoformat()} "
                tracked = day >= before
                target = this_months if day >= this_month else earlier_months
                weight_here = cumulative[joined - 1] if joined else 0.0
                in_week = day >= week_start
                rows: list[tuple[int, int, int, int, str, int | None, date | None, int]] = []
                for _ in range(count if joined else 0):
                    second = int(r() * day_seconds)
                    user_index = order[bisect.bisect_right(cumulative, r() * weight_here, 0, joined)]
                    c = bisect.bisect_right(category_cumulative, r() * acc)
                    currency = (second_currency[user_index] if r() < SECOND_CURRENCY_SHARE
                                else users[user_index].currency)
                    kopecks = scaled(int(math.exp(rng.gauss(mus[c], sigmas[c])) * 100), currency)
                    if r() < 0.6:
                        kopecks = max(100, kopecks // 100 * 100)
                    options = descriptions[c]
                    rows.append((second, user_index, c, kopecks, options[int(r() * len(options))], None, None,
                                 currency))
                for payment in bookings.get(day, ()):
                    rows.append((12 * 3600, payment.user_index, categories.index(payment.category), payment.kopecks,
                                 payment.description, payment.id, day, users[payment.user_index].currency))
                rows.sort(key=lambda row: row[0])
                for second, user_index, c, kopecks, description, payment_id, due, currency in rows:
                    expense_id += 1
                    stamp = f"{prefix}{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}{offset}"
                    buffer.write(
                        f"{expense_id}\t{users[user_index].user_id}\t{money_text(kopecks)}\t"
                        f"{CURRENCY_SHARES[currency][0]}\t{categories[c]}\t"
                        f"{description}\t{stamp}\t{stamp}\t{NULL if payment_id is None else payment_id}\t"
                        f"{NULL if due is None else due.isoformat()}\n"
                    )
                    # A budget counts its own currency only: the budgets are set from, and alerted on, that.
                    if tracked and currency == users[user_index].currency:
                        for spent in (target, this_weeks if in_week else None, todays if day == today else None):
                            if spent is not None:
                                per_category = spent.setdefault(user_index, {})
                                per_category[categories[c]] = per_category.get(categories[c], 0) + kopecks
                pending += len(rows)
                if pending >= 50_000 or day == today:
                    copy_rows(cur, "expenses (id, user_id, amount, currency, category, description, spent_at, "
                               "created_at, recurring_payment_id, due_date)", buffer)
                    if progress is not None and task is not None:
                        progress.advance(task, pending)
                    pending = 0
            if expense_id != spec.expenses:
                raise AssertionError(f"generated {expense_id} expenses instead of {spec.expenses}")

            if progress is not None:
                index_task = progress.add_task("indexes", total=len(secondary))
            for _, definition in secondary:
                cur.execute(definition)
                if progress is not None:
                    progress.advance(index_task)
            write_incomes(cur, rng, users, now, progress)
            write_budgets(cur, rng, users, earlier_months, {"month": this_months, "week": this_weeks, "day": todays},
                           now, {"month": this_month, "week": week_start, "day": today})
            for table in ("recurring_payments", "expenses", "incomes", "budgets"):
                # The ids were given explicitly: the sequences go on after them.
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST(MAX(id), 1),"
                            f" MAX(id) IS NOT NULL) FROM {table}")
            # In the same transaction as the rows: a database never holds a data set without its record.
            cur.execute(
                "INSERT INTO bench_dataset (id, users, expenses, seed, generator_version, now, timezone, generated_at,"
                " generation_seconds) VALUES (1, %s, %s, %s, %s, %s, %s, now(), %s)",
                (spec.users, spec.expenses, spec.seed, GENERATOR_VERSION, now, timezone,
                 time.perf_counter() - started),
            )
        vacuum(conn, "users", "recurring_payments", "expenses", "incomes", "budgets", "budget_alerts")
        seconds = time.perf_counter() - started
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE bench_dataset SET generation_seconds = %s", (seconds,))
    finally:
        conn.close()
    return seconds


def _empty_application_tables(cur: Any) -> None:
    """Every table of the schema but the migrations' record and ours (new tables join by themselves)."""
    cur.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        " AND tablename <> 'schema_migrations' AND tablename NOT LIKE 'bench\\_%%'"
    )
    tables = [row[0] for row in cur.fetchall()]
    if tables:
        quoted = ", ".join(f'"{table}"' for table in tables)
        cur.execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")


def _secondary_indexes(cur: Any, table: str) -> list[tuple[str, str]]:
    """The table's indexes that back no constraint: dropped for the load and built again after it (one
    sort per index instead of five million random insertions), from their own definitions, so whatever
    the migrations define is what the benchmarks use."""
    cur.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " WHERE x.indrelid = %s::regclass"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) ORDER BY i.relname",
        (table,),
    )
    return [(row[0], row[1]) for row in cur.fetchall()]


def fingerprint(url: str, timezone: str = "Europe/Moscow") -> str:
    """An md5 of the data set's rows (for tests at small sizes: it reads every row)."""
    conn = connect(url, timezone)
    try:
        with conn, conn.cursor() as cur:
            parts = []
            for table in ("users", "recurring_payments", "expenses", "incomes", "budgets", "budget_alerts"):
                cur.execute(f"SELECT md5(COALESCE(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t")
                parts.append(cur.fetchone()[0])
        return "-".join(parts)
    finally:
        conn.close()
