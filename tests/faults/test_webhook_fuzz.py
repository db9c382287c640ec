"""The webhook under random and hostile input (hypothesis), through the handler as API Gateway calls it, on
the local stack (PostgreSQL, moto, the Telegram stand-in). Whatever comes in:

- no answer is 5xx: nothing here is a transient failure, and Telegram would hold the chat behind a 5xx for a
  day (an exception escaping the handler counts as API Gateway's 500);
- an input answered 4xx stores no row in any table; an update answered 200 is handled, ignored or a
  duplicate, never `failed` (a bug), and the expenses and incomes it stores are exactly what `parse_message`
  reads;
- no answer and no reply shows internals (a traceback, SQL, a driver's or an exception's name), unless the
  input itself carried that text (a description is echoed back).

The examples are derandomized and their number fixed, so every run tries the same inputs; the module
prints how many it tried and how they were answered."""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expensebot.parsing import InvalidInput, parse_message
from expensebot_tools.local.events import api_gateway_event
from expensebot_tools.local.updates import FakeUser, UpdateFactory
from tests.conftest import APPLICATION_TABLES, MOSCOW, run_sql
from tests.faults.figures import RESULTS, Figures

ANNA = FakeUser(user_id=1001, first_name="Анна")
AT = datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW)
SECRET = "local-webhook-secret"

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)

# What only the program could have written: shown to a caller, each would leak how the service is built.
INTERNALS = ("Traceback", 'File "', "psycopg", "SELECT ", "INSERT INTO", "processed_updates", "pydantic",
             "aiogram", "errors.pydantic.dev", "site-packages", "line ")
EXCEPTION_NAME = re.compile(r"\b[A-Z][A-Za-z]*(?:Error|Exception|Violation)\b")

# An update with no type aiogram knows ({"update_id": 5}) is acknowledged and ignored, after a warning.
pytestmark = pytest.mark.filterwarnings("ignore:Detected unknown update type:RuntimeWarning")

FIGURES: Counter[str] = Counter()
_fresh_update_ids = itertools.count(10_000_000)

# ---------------------------------------------------------------- hostile values

HUGE_INTEGERS = st.sampled_from([2**31, 2**53, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, -1, 0])
HOSTILE_NUMBERS = st.one_of(
    HUGE_INTEGERS,
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 5e-324, 0.5, 1.0, 25_000_000_000, 1_773_100_000_000]),
)
HOSTILE_VALUES = st.one_of(
    HOSTILE_NUMBERS, st.booleans(), st.none(), st.text(max_size=20), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
CONTROL_AND_INVISIBLE = "\x01\x07\x08\x1b\x7f\u200b\u200c\u200d\u2060\ufeff\u202e\u2028\u00a0\t\r\n"
HOSTILE_TEXTS = st.one_of(
    st.sampled_from([
        "", " ", "250 кофе", "кофе 250", "1 000 000 такси", "/start", "/help", "/undo", "/report", "/budget",
        "/budget 1e308", "/budget NaN", "/budget кафе 5000", "/recurring 31 1e308 аренда",
        "/recurring 5 30000 аренда", "/recurring_off 99999999999999999999", "/recurring_off #1",
        "/undo@expensebot_local_bot", "/undo@", "/@", "/", "@",
        "250 '); DROP TABLE expenses; --", "' OR 1=1 --", "250 кофе; SELECT pg_sleep(10)",
        "<b>250</b> кофе", "250 <script>alert(1)</script>", "250 &amp; &lt;кофе&gt;",
        "2\u200b50 кофе", "250\u200bкофе", "\u202e250 кофе", "250 \x1b[31mкофе", "250\r\nкофе", "250\tкофе",
        "١٢٣ кофе", "１２３ кофе", "250 кофе 🍩", "250 e\u0301\u0301\u0301", "0 кофе", "-0 кофе", "+250 кофе",
        "1e308 кофе", "9" * 400 + " кофе", "кофе " + "0" * 50 + "1",
        "x" + " 000" * 1023 + " 1", "250 " + "к" * 4092, "250 " + "к" * 4093, "к" * 100_000,
        "x" + " 000" * 25_000 + " 1",
    ]),
    st.text(alphabet=st.sampled_from("0123456789 ,.-+кофеabc/@" + CONTROL_AND_INVISIBLE), max_size=40),
    st.text(max_size=60),
)


def _base_update() -> dict[str, Any]:
    return UpdateFactory(first_update_id=next(_fresh_update_ids)).message(ANNA, "250 кофе", AT)


# One change to a valid private-chat update: a field set to a hostile value, or removed.
FIELDS = ["update_id", "message", "message.message_id", "message.date", "message.from", "message.from.id",
          "message.from.first_name", "message.from.language_code", "message.from.is_bot", "message.chat",
          "message.chat.id", "message.chat.type", "message.text", "message.entities", "message.edit_date",
          "message.reply_to_message"]
MUTATIONS = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(FIELDS), HOSTILE_VALUES),
    st.tuples(st.just("delete"), st.sampled_from(FIELDS), st.none()),
    st.tuples(st.just("set"), st.just("message.text"), HOSTILE_TEXTS),
    st.tuples(st.just("set"), st.just("message.entities"),
              st.lists(st.fixed_dictionaries({"type": st.sampled_from(["bot_command", "bold", "mention", "x"]),
                                              "offset": HOSTILE_NUMBERS, "length": HOSTILE_NUMBERS}), max_size=3)),
)


def _mutate(update: dict[str, Any], mutations: list[tuple[str, str, Any]]) -> dict[str, Any]:
    update = copy.deepcopy(update)
    for action, path, value in mutations:
        *parents, last = path.split(".")
        target: Any = update
        for key in parents:
            target = target.get(key) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if action == "delete":
            target.pop(last, None)
        else:
            target[last] = value
    return update


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)

# ---------------------------------------------------------------- the harness


@pytest.fixture(scope="module", autouse=True)
def _report_figures(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    line = (f"webhook fuzz: {FIGURES['inputs']} inputs, {FIGURES['5xx']} answered 5xx, "
            f"{FIGURES['4xx']} 4xx (stored nothing), {FIGURES['200']} 200 "
            f"({FIGURES['handled']} handled, {FIGURES['ignored']} ignored, {FIGURES['duplicate']} duplicate), "
            f"{FIGURES['replies']} replies checked")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown in every run, not only with a failure
            reporter.write("\n")
            reporter.write_line(line)
    # One row of the suite's table: every input is a fault; a 5xx is what the module must never see.
    RESULTS.append(Figures(scenario="webhook fuzz (hostile and random bodies)", faults=FIGURES["inputs"],
                           answers_5xx=FIGURES["5xx"]))


@pytest.fixture
def webhook(system: Any) -> Iterator[Any]:
    system.telegram.add_chat(ANNA.user_id, first_name=ANNA.first_name)
    yield system
    from expensebot.observability import metrics

    metrics.clear_metrics()  # kept while metrics are disabled; a later test counts its own


def _rows() -> tuple[int, ...]:
    counts = ", ".join(f"(SELECT count(*) FROM {table})" for table in APPLICATION_TABLES)
    return tuple(run_sql(f"SELECT {counts}")[0])


def _latest(table: str, count: int) -> list[tuple[str, str]]:
    """The amounts and descriptions of the table's latest rows, oldest first."""
    stored = run_sql(f"SELECT amount::text, description FROM {table} ORDER BY id DESC LIMIT %s", (count,))
    return [(amount, description) for amount, description in reversed(stored)]


def _entries(text: str) -> list[Any]:
    """What the bot records from a text: one entry per line it can read (none when it refuses the text)."""
    try:
        return [line.entry for line in parse_message(text) if line.entry is not None]
    except InvalidInput:
        return []


def _shows_internals(text: str, sent: str) -> list[str]:
    found = [marker for marker in INTERNALS if marker in text and marker not in sent]
    found += [name for name in EXCEPTION_NAME.findall(text) if name not in sent]
    return found


def _post(system: Any, event: dict[str, Any], *, sent: str, text: str | None = None,
          update: Any = None) -> dict[str, Any]:
    """Posts one event and checks every property the module promises; returns the answer. `update` is the
    object the body was made from, when there is one: what was taken must be what it said."""
    before_rows = _rows()
    before_calls = len(system.telegram.calls)
    try:
        response = system.invoke(system.WEBHOOK_FUNCTION, event)
    except Exception as exc:  # what API Gateway answers when the function raises
        response = {"statusCode": 500, "body": json.dumps({"raised": repr(exc)})}
    status = response["statusCode"]
    FIGURES["inputs"] += 1
    FIGURES[f"{status // 100}xx" if status != 200 else "200"] += 1
    assert status < 500, (status, response["body"][:500], sent[:300])
    assert not _shows_internals(response["body"], sent), response["body"][:500]

    after_rows = _rows()
    if status != 200:
        assert after_rows == before_rows, f"{status} but rows changed: {sent[:300]}"
    else:
        outcome = json.loads(response["body"])["status"]
        FIGURES[outcome] += 1
        assert outcome in {"handled", "ignored", "duplicate"}, (outcome, sent[:300])
        if isinstance(update, dict):
            # Taken only as Telegram means it: a real integer id (not true, not 7.0), stored as it was.
            update_id = update.get("update_id")
            assert type(update_id) is int, (update_id, sent[:300])
            assert run_sql("SELECT count(*) FROM processed_updates WHERE update_id = %s", (update_id,)) == [(1,)]
        new_expenses, new_incomes = (
            after_rows[APPLICATION_TABLES.index(table)] - before_rows[APPLICATION_TABLES.index(table)]
            for table in ("expenses", "incomes")
        )
        if new_expenses or new_incomes:
            assert text is not None
            entries = _entries(text)
            expected = {
                table: [(str(entry.amount), entry.description) for entry in entries
                        if entry.income == (table == "incomes")]
                for table in ("expenses", "incomes")
            }
            # A command (/income) stores what its arguments read as; a plain text stores one row per line.
            if not text.lstrip().startswith("/"):
                assert _latest("expenses", new_expenses) == expected["expenses"], sent[:300]
                assert _latest("incomes", new_incomes) == expected["incomes"], sent[:300]
            if isinstance(update, dict) and new_expenses:  # at the message's time, as the seconds Telegram sends
                ((spent_at,),) = run_sql("SELECT spent_at FROM expenses ORDER BY id DESC LIMIT 1")
                assert spent_at == datetime.fromtimestamp(update["message"]["date"], UTC), sent[:300]
        elif text is not None and outcome == "handled":
            # Nothing stored from a text with a line that reads as an entry is only right for a command.
            assert not _entries(text) or text.lstrip().startswith("/") or len(text) > 4096, text[:300]

    for call in system.telegram.calls[before_calls:]:
        if call.method != "sendMessage":
            continue
        FIGURES["replies"] += 1
        reply = str(call.params.get("text", ""))
        assert not _shows_internals(reply, sent), reply[:500]
        if str(call.params.get("chat_id")) == str(ANNA.user_id):
            assert call.status == 200, (call.status, call.response, reply[:300])
    return response


def _event(body: str, *, base64_body: bool = False) -> dict[str, Any]:
    return api_gateway_event(body, secret=SECRET, base64_body=base64_body)


# ---------------------------------------------------------------- the properties


@FUZZ
@given(mutations=st.lists(MUTATIONS, min_size=1, max_size=3))
def test_a_telegram_shaped_update_with_hostile_values_never_gets_a_5xx_nor_stores_what_it_refuses(webhook,
                                                                                                    mutations):
    update = _mutate(_base_update(), mutations)
    body = json.dumps(update, ensure_ascii=False)
    message = update.get("message")
    text = message.get("text") if isinstance(message, dict) else None
    _post(webhook, _event(body), sent=body, text=text if isinstance(text, str) else None, update=update)


NUMBER_FIELDS = ["update_id", "message.date", "message.message_id", "message.from.id", "message.chat.id",
                 "message.edit_date", "message.forward_date"]


@FUZZ
@given(field=st.sampled_from(NUMBER_FIELDS), value=HOSTILE_NUMBERS | st.booleans() | st.text(max_size=25))
def test_a_hostile_number_where_telegram_sends_an_integer_is_refused_or_taken_as_is(webhook, field, value):
    update = _mutate(_base_update(), [("set", field, value)])
    body = json.dumps(update, ensure_ascii=False)
    _post(webhook, _event(body), sent=body, text=update["message"]["text"], update=update)


@FUZZ
@given(text=HOSTILE_TEXTS)
def test_any_text_in_a_valid_update_is_answered_and_stored_only_as_parse_message_reads_it(webhook, text):
    update = _base_update()
    update["message"]["text"] = text
    if text.startswith("/"):
        update["message"]["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    body = json.dumps(update, ensure_ascii=False)
    _post(webhook, _event(body), sent=body, text=text, update=update)


@settings(FUZZ, max_examples=100)
@given(payload=JSON_VALUES | st.fixed_dictionaries({"update_id": HOSTILE_VALUES}, optional={"message": JSON_VALUES}))
def test_random_json_is_refused_or_acknowledged_never_a_5xx(webhook, payload):
    body = json.dumps(payload, ensure_ascii=False)
    _post(webhook, _event(body), sent=body)


@settings(FUZZ, max_examples=100)
@given(raw=st.binary(max_size=200), as_base64=st.booleans())
def test_random_bytes_plain_or_base64_are_refused_never_a_5xx(webhook, raw, as_base64):
    if as_base64:
        event = _event("{}")
        event.update(body=base64.b64encode(raw).decode(), isBase64Encoded=True)
    else:
        event = _event(raw.decode("utf-8", "replace"))
    _post(webhook, event, sent=repr(raw))


def _nested(depth: int) -> str:
    return '{"update_id": 1, "message": ' + '{"reply_to_message": ' * depth + "{}" + "}" * depth + "}"


@pytest.mark.parametrize(
    ("body", "base64_body"),
    [
        ('{"update_id": 1, "pad": "' + "x" * (10 * 1024 * 1024) + '"}', False),
        ('{"update_id": 1, "pad": "' + "x" * (10 * 1024 * 1024) + '"}', True),
        ("[" * 100_000, False),
        (_nested(31), False),
        (_nested(500), False),
        ('{"update_id": NaN}', False),
        ('{"update_id": 1, "message": {"date": Infinity}}', False),
        ('{"update_id": 1e308}', False),
        ('{"update_id": ' + "1" * 10_000 + "}", False),
        ('{"update_id": 1, "message": {"text": "\\u0000"}}', False),
        ('{"update_id": 1, "message": {"text": "\\udfff"}}', False),
        (json.dumps({**_base_update(), "update_id": 1}), True),
        ("", False),
        ("null", False),
        ('"update_id"', False),
    ],
    ids=["10 MB", "10 MB base64", "100,000 brackets", "31 levels", "500 levels", "NaN", "Infinity", "1e308 id",
         "10,000 digits", "NUL", "lone surrogate", "valid base64", "empty", "null", "a string"],
)
def test_extreme_bodies_are_refused_or_handled_never_a_5xx(webhook, body, base64_body):
    text = None
    if base64_body and len(body) < 10_000:  # the one valid update: its text may store an expense
        text = json.loads(body)["message"]["text"]
    _post(webhook, _event(body, base64_body=base64_body), sent=body[:1000], text=text)
