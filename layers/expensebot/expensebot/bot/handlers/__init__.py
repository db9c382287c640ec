"""One router per feature, assembled in one place."""

from aiogram import Router

from expensebot.bot.handlers import budgets, expenses, exports, limits, recurring, reports, start


def get_routers() -> list[Router]:
    # Order matters: the length limit before anything reads the text, then commands, the free-text expense
    # handler (and its fallback) last.
    return [
        limits.router, start.router, budgets.router, recurring.router, reports.router, exports.router,
        expenses.router,
    ]
