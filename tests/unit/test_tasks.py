"""The task registry and the message envelope that travels on the queues."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any, cast, get_args

import pytest
from pydantic import BaseModel

from expensebot.bootstrap import Runtime
from expensebot.config import QUEUE_NAMES
from expensebot.errors import InvalidMessage
from expensebot.tasks import TaskMessage, lookup, parse_message, registry, task

# Task.run validates its arguments before it touches the runtime.
NO_RUNTIME = cast(Runtime, None)


class NoArgs(BaseModel):
    pass


def valid_budget_alert_args() -> dict[str, Any]:
    return {
        "budget_id": 1,
        "user_id": 42,
        "chat_id": 42,
        "month": "2026-03-01",
        "threshold": 90,
        "spent": "900.00",
        "limit": "1000.00",
    }


def test_the_registry_has_the_budget_alert_task_on_the_notifications_queue() -> None:
    tasks = registry()

    assert "notifications.send_budget_alert" in tasks
    assert tasks["notifications.send_budget_alert"].queue == "notifications"
    assert tasks["notifications.send_budget_alert"].job == "check_budget_limits"


def test_every_registered_task_is_on_the_queue_its_name_starts_with() -> None:
    for name, registered in registry().items():
        assert registered.queue == name.split(".", 1)[0]
        assert registered.queue in QUEUE_NAMES


@pytest.mark.parametrize("name", ["celery.send_alert", "send_alert", "Notifications.send_alert", ".send_alert"])
def test_a_task_whose_name_does_not_start_with_a_queue_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="must start with a queue"):
        task(name, args=NoArgs)

    assert name not in registry()


@pytest.mark.parametrize("body", ["not json", "", "{", "[]", "42"])
def test_a_body_that_is_not_a_json_object_is_an_invalid_message(body: str) -> None:
    with pytest.raises(InvalidMessage, match="not a task message"):
        parse_message(body)


def test_a_body_without_a_task_is_an_invalid_message_naming_the_field() -> None:
    with pytest.raises(InvalidMessage, match="task"):
        parse_message(json.dumps({"args": {}}))


def test_a_body_with_unexpected_fields_is_an_invalid_message() -> None:
    with pytest.raises(InvalidMessage, match="kwargs"):
        parse_message(json.dumps({"task": "notifications.send_budget_alert", "kwargs": {}}))


def test_a_minimal_body_gets_empty_args_and_an_id() -> None:
    message = parse_message(json.dumps({"task": "notifications.send_budget_alert"}))

    assert message.task == "notifications.send_budget_alert"
    assert message.args == {}
    assert message.id


def test_looking_up_an_unregistered_task_lists_the_known_tasks() -> None:
    with pytest.raises(InvalidMessage) as caught:
        lookup("reports.unknown")

    assert "reports.unknown" in str(caught.value)
    assert "notifications.send_budget_alert" in str(caught.value)


def test_looking_up_a_registered_task_finds_it() -> None:
    assert lookup("notifications.send_budget_alert").name == "notifications.send_budget_alert"


def test_running_a_task_with_a_bad_field_names_the_field() -> None:
    args = {**valid_budget_alert_args(), "chat_id": "not a chat"}

    with pytest.raises(InvalidMessage) as caught:
        lookup("notifications.send_budget_alert").run(NO_RUNTIME, args)

    assert "notifications.send_budget_alert" in str(caught.value)
    assert "chat_id" in str(caught.value)


def test_running_a_task_with_a_missing_field_names_the_field() -> None:
    args = valid_budget_alert_args()
    del args["threshold"]

    with pytest.raises(InvalidMessage, match="threshold"):
        lookup("notifications.send_budget_alert").run(NO_RUNTIME, args)


def test_a_task_message_round_trips_through_json() -> None:
    message = TaskMessage(
        task="notifications.send_budget_alert",
        args=valid_budget_alert_args(),
        enqueued_at=datetime(2026, 3, 31, 17, 0, 5, tzinfo=UTC),
        job_run_id=7,
    )

    assert parse_message(message.model_dump_json()) == message


def test_the_message_a_task_builds_carries_its_arguments_as_json() -> None:
    registered = lookup("notifications.send_budget_alert")
    args = registered.args_model.model_validate(valid_budget_alert_args())

    message = registered.message(args, at=datetime(2026, 3, 31, 17, 0, tzinfo=UTC), job_run_id=3)
    restored = parse_message(message.model_dump_json())

    assert restored.task == "notifications.send_budget_alert"
    assert restored.job_run_id == 3
    assert registered.args_model.model_validate(restored.args) == args
    assert registered.args_model.model_validate(restored.args).period_start == date(2026, 3, 1)


def test_each_message_gets_its_own_id() -> None:
    first = TaskMessage(task="notifications.send_budget_alert")
    second = TaskMessage(task="notifications.send_budget_alert")

    assert first.id != second.id


def test_a_body_without_an_id_gets_the_same_id_on_every_delivery() -> None:
    # SQS redelivers, and copies, a body byte for byte; each delivery parses it anew.
    body = json.dumps({"task": "default.debug_task", "args": {"chat_id": 42}})

    first, second = parse_message(body), parse_message(body)

    assert first.id == second.id
    assert first.id.startswith("body-")


def test_bodies_without_an_id_that_differ_get_different_ids() -> None:
    first = parse_message(json.dumps({"task": "default.debug_task", "args": {"note": "a"}}))
    second = parse_message(json.dumps({"task": "default.debug_task", "args": {"note": "b"}}))

    assert first.id != second.id


def test_a_body_with_an_id_keeps_it() -> None:
    message = parse_message(json.dumps({"task": "default.debug_task", "id": "set-at-enqueue"}))

    assert message.id == "set-at-enqueue"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _default_factories(model: type[BaseModel], seen: set[type[BaseModel]]) -> dict[str, Any]:
    if model in seen:
        return {}
    seen.add(model)
    factories = {}
    for name, field in model.model_fields.items():
        if field.default_factory is not None:
            factories[f"{model.__name__}.{name}"] = field.default_factory
        for nested in _models_in(field.annotation):
            factories.update(_default_factories(nested, seen))
    return factories


def test_no_task_argument_defaults_to_a_value_made_up_at_delivery() -> None:
    # A worker validates a message's arguments on every delivery: a default that differs between two calls
    # (a uuid, the time) would differ between two deliveries of one message, and so would any dedupe key
    # built from it.
    seen: set[type[BaseModel]] = set()
    factories = {
        name: factory for registered in registry().values()
        for name, factory in _default_factories(registered.args_model, seen).items()
    }

    varying = sorted(name for name, factory in factories.items() if factory() != factory())

    assert varying == []


def test_a_debug_request_without_a_request_id_takes_the_id_of_its_message() -> None:
    request = lookup("default.debug_task").args_model.model_validate(
        {"chat_id": 42}, context={"message_id": "m-1"}
    )

    assert request.request_id == "m-1"


def test_a_debug_request_keeps_its_own_request_id_over_its_messages() -> None:
    request = lookup("default.debug_task").args_model.model_validate(
        {"chat_id": 42, "request_id": "r-1"}, context={"message_id": "m-1"}
    )

    assert request.request_id == "r-1"
