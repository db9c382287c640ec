"""The scheduled jobs, one module each: the rule, the set-based plan, and the worker task it enqueues.
Importing this package registers every job and task."""

from expensebot.jobs import (
    admin_report,
    budget_limits,
    cleanup,
    debug,
    exports,
    monthly_reports,
    recurring_payments,
)

__all__ = ["admin_report", "budget_limits", "cleanup", "debug", "exports", "monthly_reports", "recurring_payments"]
