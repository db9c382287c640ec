"""The demo's world: its four users, its admin group and its first morning's conversation. `make demo` tells
it as a timeline; `simulate --demo` plays it (kept apart so neither module imports the other)."""

from __future__ import annotations

from expensebot_tools.local.updates import FakeUser

USERS = (
    FakeUser(1001, "Анна", "anna"),
    FakeUser(1002, "Борис", "boris"),
    FakeUser(1003, "Вера", "vera"),
    FakeUser(1004, "Emma", "emma", language_code="en"),
)
# The demo's admin group: ADMIN_CHAT_IDS points here unless the environment names other chats.
ADMIN_CHAT_ID = -1001000000001

# (minutes after 09:00 on the month's first day, user, text): the demo's first morning.
SCRIPT: tuple[tuple[int, FakeUser, str], ...] = (
    (0, USERS[0], "/start"),
    (1, USERS[0], "/budget 1000"),
    (2, USERS[0], "850 кофе"),
    (3, USERS[1], "/start"),
    (4, USERS[1], "/budget 20000"),
    (5, USERS[1], "продукты 12000"),
    (6, USERS[2], "/start"),
    (7, USERS[2], "/budget 5000"),
    (8, USERS[2], "такси 3500"),
    (9, USERS[3], "/start"),
    (10, USERS[3], "/budget 300"),
    (11, USERS[3], "coffee 120"),
    (12, USERS[1], "/recurring 5 35000 аренда"),
    (13, USERS[3], "/recurring 15 12 music subscription"),
    (35, USERS[1], "4500 аптека"),
    (40, USERS[2], "1800 ужин в ресторане"),
    (70, USERS[3], "movie tickets 200"),
)
