"""One router per feature, assembled in one place."""

from aiogram import Router

from expensebot.bot.handlers import budgets, expenses, recurring, reports, start


def get_routers() -> list[Router]:
    # Order matters: commands first, the free-text expense handler (and its fallback) last.
    return [start.router, budgets.router, recurring.router, reports.router, expenses.router]
