"""The bot's conversations for the integration tests: three users (Russian, Russian, English) talking to the
webhook through the local system, each reply read back from the Telegram stand-in."""

from __future__ import annotations

import pytest

from expensebot_tools.local.updates import Conversation, FakeUser, UpdateFactory

ANNA = FakeUser(user_id=1001, first_name="Анна", username="anna")
BORIS = FakeUser(user_id=1002, first_name="Борис")
EMMA = FakeUser(user_id=1004, first_name="Emma", language_code="en")
NBSP = "\u00a0"


@pytest.fixture
def updates() -> UpdateFactory:
    return UpdateFactory()


@pytest.fixture
def anna(system, updates) -> Conversation:
    return Conversation(system, ANNA, updates)


@pytest.fixture
def boris(system, updates) -> Conversation:
    return Conversation(system, BORIS, updates)


@pytest.fixture
def emma(system, updates) -> Conversation:
    return Conversation(system, EMMA, updates)
