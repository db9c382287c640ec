"""The webhook under faults: PostgreSQL stopped before an update's transaction, and right after its commit
(before the reply). Telegram redelivers what did not get a 2xx, as it does for up to 24 hours; every
expense is stored once and every reply sent once."""

from __future__ import annotations

from typing import Any

from expensebot_tools.local.updates import FakeUser, UpdateFactory
from tests.conftest import run_sql
from tests.faults.delivery import delivered_per_chat, score

ANNA = FakeUser(2001, "Anna", language_code="en")


def post_until_acknowledged(system: Any, update: dict[str, Any], figures: Any, *, tries: int = 5,
                            between: Any = None) -> dict[str, Any]:
    """Telegram's side: any non-2xx is retried (with growing delays), the same update each time."""
    for _ in range(tries):
        response = system.post_update(update)
        if response["statusCode"] < 300:
            return response
        figures.answers_5xx += int(response["statusCode"] >= 500)
        if between is not None:
            between()
    raise AssertionError(f"update {update['update_id']} never acknowledged: {response}")


def expenses_of(user_id: int) -> int:
    return int(run_sql("SELECT count(*) FROM expenses WHERE user_id = %s", (user_id,))[0][0])


def test_database_stopped_before_an_update_is_processed(fault_system, figures):
    fault_system.telegram.add_chat(ANNA.user_id, first_name=ANNA.first_name)
    update = UpdateFactory().message(ANNA, "250 lunch", fault_system.clock.now())
    fault_system.postgres.stop_server()
    figures.faults += 1

    first = fault_system.post_update(update)
    figures.answers_5xx += int(first["statusCode"] >= 500)
    fault_system.postgres.restart_server()
    response = post_until_acknowledged(fault_system, update, figures)

    assert first["statusCode"] == 503  # a retry helps: Telegram redelivers
    assert response["statusCode"] == 200
    assert expenses_of(ANNA.user_id) == 1
    score(figures, fault_system, [ANNA.user_id])
    assert delivered_per_chat(fault_system) == {ANNA.user_id: 1}


def test_database_stopped_right_after_the_commit_before_the_reply(fault_system, figures, monkeypatch):
    from aiogram import Bot

    fault_system.telegram.add_chat(ANNA.user_id, first_name=ANNA.first_name)
    update = UpdateFactory().message(ANNA, "250 lunch", fault_system.clock.now())
    original_call = Bot.__call__
    stopped = {"done": False}

    async def stop_then_reply(self: Any, method: Any, *args: Any, **kwargs: Any) -> Any:
        if not stopped["done"]:
            stopped["done"] = True
            fault_system.postgres.stop_server()
        return await original_call(self, method, *args, **kwargs)

    monkeypatch.setattr(Bot, "__call__", stop_then_reply)
    figures.faults += 1

    response = post_until_acknowledged(fault_system, update, figures)
    fault_system.postgres.restart_server()

    assert response["statusCode"] == 200  # committed before the database went: nothing to redeliver
    assert expenses_of(ANNA.user_id) == 1
    score(figures, fault_system, [ANNA.user_id])
    assert delivered_per_chat(fault_system) == {ANNA.user_id: 1}
