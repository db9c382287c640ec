"""One router per feature, assembled in one place."""

from aiogram import Router

from expensebot.bot.handlers import budgets, expenses, start


def get_routers() -> list[Router]:
    # Order matters: commands first, the free-text expense handler (and its fallback) last.
    return [start.router, budgets.router, expenses.router]
