"""bot: 2,000 realistic Telegram updates through the webhook function's handler (the Lambda handler, as API
Gateway events), one after another as one warm execution environment takes them: the warm latency per
update (median, 90th and 99th percentile), the first update of the process apart, and the cold import
time of the webhook module in fresh interpreters (what SnapStart saves).

Each update does what it does in AWS: the secret check, the processed_updates mark, the user's upsert,
the handler's SQL on the data set, and the reply through aiogram's HTTP session to the Telegram stand-in
(a local HTTP server); /report enqueues into SQS (moto's server over HTTP). The users are 200 bench users
given the expense history and budgets of 200 of the data set's users, so month totals and budgets read
as many rows as a real user's do; they, their rows and the processed updates are deleted afterwards and
the data set is left as it was. The mix: mostly expenses in every form, then /budget, /recurring,
/undo, /start and /help, /report, hints for text that is not understood, invalid amounts, and a few
updates redelivered by Telegram."""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

from expensebot_tools.bench import BenchContext, benchmark
from expensebot_tools.bench.dataset import connect

UPDATES = 2_000
BENCH_USERS = 200
# Far above the data set's ids (10,000,001 on), and not a real user's id in the data set.
FIRST_BENCH_USER_ID = 900_000_001
FIRST_UPDATE_ID = 9_000_000_000

# (kind, weight): the share of each kind of update in the mix.
_MIX = (
    ("expense", 70), ("budget", 6), ("budget_set", 3), ("recurring", 3), ("recurring_add", 2), ("undo", 3),
    ("start_help", 3), ("report", 1), ("hint", 4), ("invalid", 3), ("redelivered", 2),
)
_EXPENSES_RU = ("кофе", "продукты", "такси", "обед", "метро", "аптека", "кино", "Пятёрочка", "бензин", "интернет",
                "ужин в кафе", "хлеб и молоко", "кроссовки", "подарок")
_EXPENSES_EN = ("coffee", "groceries", "taxi", "lunch", "cinema", "pharmacy", "bread")
_HINTS = ("привет", "спасибо!", "сколько я потратил?", "/stats", "кофе латте")
_INVALID = ("0 кофе", "-300 такси", "1000000001 квартира", "12.345 кофе", "/budget 0", "/recurring 32 500 аренда")


def _amount(rng: random.Random) -> str:
    roubles = int(rng.lognormvariate(6.0, 0.9)) + 1
    if rng.random() < 0.4:
        return f"{roubles}{rng.choice(',.')}{rng.randrange(100):02d}"
    return str(roubles)


def _text(kind: str, rng: random.Random, english: bool) -> str:
    if kind == "expense":
        description = rng.choice(_EXPENSES_EN if english else _EXPENSES_RU)
        amount = _amount(rng)
        return f"{amount} {description}" if rng.random() < 0.6 else f"{description} {amount}"
    if kind == "budget":
        return "/budget"
    if kind == "budget_set":
        return rng.choice(("/budget 30000", "/budget кафе 5000", "/budget транспорт 4000"))
    if kind == "recurring":
        return "/recurring"
    if kind == "recurring_add":
        return f"/recurring {rng.randint(1, 31)} {rng.choice(('399', '1200', '35000'))} " + rng.choice(
            ("подписка на музыку", "мобильная связь", "аренда квартиры"))
    if kind == "undo":
        return "/undo"
    if kind == "start_help":
        return rng.choice(("/start", "/help"))
    if kind == "report":
        return "/report"
    if kind == "hint":
        return rng.choice(_HINTS)
    return rng.choice(_INVALID)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _add_bench_users(ctx: BenchContext) -> None:
    """200 bench users, each with the expense history and budgets of one of the data set's users."""
    conn = connect(ctx.dataset.url, ctx.dataset.timezone)
    try:
        with conn, conn.cursor() as cur:
            _delete_bench_rows(cur)
            cur.execute(
                """
                CREATE TEMP TABLE bench_bot_users ON COMMIT DROP AS
                SELECT %(first)s + row_number() OVER (ORDER BY md5(user_id::text || %(seed)s)) - 1 AS user_id,
                       user_id AS source
                  FROM users WHERE user_id < %(first)s
                 ORDER BY md5(user_id::text || %(seed)s) LIMIT %(users)s
                """,
                {"first": FIRST_BENCH_USER_ID, "seed": str(ctx.options.seed), "users": BENCH_USERS},
            )
            cur.execute(
                """
                INSERT INTO users (user_id, chat_id, first_name, language_code, created_at, last_seen_at)
                SELECT user_id, user_id, 'Bench', CASE WHEN user_id %% 7 = 0 THEN 'en' ELSE 'ru' END, %(now)s, %(now)s
                  FROM bench_bot_users
                """,
                {"now": ctx.dataset.now},
            )
            cur.execute(
                """
                INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at)
                SELECT b.user_id, e.amount, e.category, e.description, e.spent_at, e.created_at
                  FROM bench_bot_users b JOIN expenses e ON e.user_id = b.source
                """
            )
            cur.execute(
                """
                INSERT INTO budgets (user_id, category, amount, created_at, updated_at)
                SELECT b.user_id, g.category, g.amount, g.created_at, g.updated_at
                  FROM bench_bot_users b JOIN budgets g ON g.user_id = b.source
                """
            )
            cur.execute("ANALYZE expenses")
    finally:
        conn.close()


def _delete_bench_rows(cur: Any) -> None:
    # Expenses, budgets and recurring payments go with their users (ON DELETE CASCADE).
    cur.execute("DELETE FROM users WHERE user_id >= %s", (FIRST_BENCH_USER_ID,))
    cur.execute("DELETE FROM processed_updates WHERE update_id >= %s", (FIRST_UPDATE_ID,))


def _remove_bench_users(ctx: BenchContext) -> None:
    conn = connect(ctx.dataset.url, ctx.dataset.timezone)
    try:
        with conn, conn.cursor() as cur:
            _delete_bench_rows(cur)
    finally:
        conn.close()


@benchmark("bot")
def run(ctx: BenchContext) -> None:
    """2,000 updates through the webhook handler: warm p50/p99 latency; cold import of the webhook module"""
    import json
    import logging
    import socket
    import warnings

    from moto.server import ThreadedMotoServer

    from expensebot.bootstrap import set_runtime
    from expensebot_tools.local.events import LocalLambdaContext, api_gateway_event
    from expensebot_tools.local.stack import (
        LOCAL_BOT_TOKEN,
        LOCAL_WEBHOOK_SECRET,
        LocalQueues,
        environment,
        sqs_client,
    )
    from expensebot_tools.local.telegram import TelegramStandIn
    from expensebot_tools.local.updates import FakeUser, UpdateFactory
    from expensebot_tools.project.import_times import measure_import
    from expensebot_tools.project.template import Template

    # moto's server logs every request, and Powertools warns about invocations that add no metric.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", "No application metrics to publish")
    template = Template()
    webhook_module = template.functions["WebhookFunction"].module_path
    cold = measure_import(webhook_module, runs=3)

    rng = random.Random(ctx.options.seed)
    users = [
        FakeUser(user_id=FIRST_BENCH_USER_ID + n, first_name="Bench",
                 language_code="en" if (FIRST_BENCH_USER_ID + n) % 7 == 0 else "ru")
        for n in range(BENCH_USERS)
    ]
    factory = UpdateFactory(first_update_id=FIRST_UPDATE_ID)
    kinds, weights = zip(*_MIX, strict=True)
    plan: list[tuple[str, dict[str, Any]]] = []
    sent: list[dict[str, Any]] = []
    for n in range(UPDATES):
        kind = rng.choices(kinds, weights)[0]
        if kind == "redelivered" and sent:
            plan.append((kind, rng.choice(sent[-50:])))
            continue
        if kind == "redelivered":
            kind = "expense"
        user = rng.choice(users)
        at = ctx.dataset.now - timedelta(seconds=(UPDATES - n) * 3)
        update = factory.message(user, _text(kind, rng, user.language_code == "en"), at)
        sent.append(update)
        plan.append((kind, update))

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    telegram = TelegramStandIn(tokens=[LOCAL_BOT_TOKEN], enforce_limits=False)
    telegram.start()
    for user in users:
        telegram.add_chat(user.user_id, first_name=user.first_name)
    endpoint = f"http://127.0.0.1:{port}"
    variables = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: Counter[str] = Counter()
    _add_bench_users(ctx)
    try:
        with environment(variables):
            queues = LocalQueues.create(template, sqs_client(endpoint), prefix="expensebot-bench-bot-")
            urls = {name: value for name, value in template.environment(None, queues.resolver(template)).items()
                    if name.startswith("QUEUE_URL_")}
            runtime = ctx.runtime(
                SQS_ENDPOINT_URL=endpoint, TELEGRAM_API_BASE=telegram.base_url, TELEGRAM_BOT_TOKEN=LOCAL_BOT_TOKEN,
                WEBHOOK_SECRET=LOCAL_WEBHOOK_SECRET, **urls,
            )
            set_runtime(runtime)
            handler = template.load_handler("WebhookFunction")
            context = LocalLambdaContext(function_name="WebhookFunction", timeout_seconds=25)
            events = [(kind, api_gateway_event(update, secret=LOCAL_WEBHOOK_SECRET)) for kind, update in plan]
            first_seconds: float | None = None
            with ctx.progress() as progress:
                task = progress.add_task("updates through the webhook handler", total=len(events))
                for kind, event in events:
                    started = time.perf_counter()
                    response = handler(event, context)
                    elapsed = time.perf_counter() - started
                    status = response["statusCode"]
                    outcome = json.loads(response["body"]).get("status", "")
                    statuses[f"{status} {outcome}".strip()] += 1
                    if status != 200 or outcome == "failed":
                        raise AssertionError(f"{kind} update answered {status} {outcome}: {response['body']}")
                    if first_seconds is None:
                        first_seconds = elapsed  # builds the Bot, its HTTP session and the DB connection
                    else:
                        latencies[kind].append(elapsed)
                    progress.advance(task)
            (stored,) = runtime.db.fetch_all(
                "SELECT count(*) AS n FROM processed_updates WHERE update_id >= %s", (FIRST_UPDATE_ID,))
            replies = len(telegram.sent_messages())
    finally:
        set_runtime(None)
        webhook = sys.modules.get("expensebot.bot.webhook")
        if webhook is not None:
            webhook.reset()
        telegram.stop()
        moto.stop()
        _remove_bench_users(ctx)

    unique_updates = len({update["update_id"] for _, update in plan})
    if stored["n"] != unique_updates:
        raise AssertionError(f"{stored['n']} updates processed, {unique_updates} expected: each exactly once")
    if replies != unique_updates:
        raise AssertionError(f"{replies} replies sent for {unique_updates} updates: expected one each")
    warm = [seconds for values in latencies.values() for seconds in values]
    per_kind = {kind: {"updates": len(values), "p50_ms": round(statistics.median(values) * 1000, 2),
                       "p99_ms": round(_percentile(values, 0.99) * 1000, 2)}
                for kind, values in sorted(latencies.items())}
    ctx.record({
        "updates": len(plan),
        "warm_p50_ms": round(statistics.median(warm) * 1000, 2),
        "warm_p90_ms": round(_percentile(warm, 0.90) * 1000, 2),
        "warm_p99_ms": round(_percentile(warm, 0.99) * 1000, 2),
        "warm_max_ms": round(max(warm) * 1000, 2),
        "expense_p50_ms": per_kind.get("expense", {}).get("p50_ms"),
        "first_update_ms": round((first_seconds or 0) * 1000, 1),
        "updates_per_second": round(len(warm) / sum(warm), 1),
        "cold_import_seconds": round(float(cold["seconds"]), 3),
        "imports_aiogram": bool(cold["aiogram"]),
        "per_kind": per_kind,
        "statuses": dict(statuses),
        "telegram": "the local stand-in over HTTP",
        "sqs": "moto.server.ThreadedMotoServer over HTTP",
    })
