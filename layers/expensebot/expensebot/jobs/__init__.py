"""The scheduled jobs, one module each: the rule, the set-based plan, and the worker task it enqueues.
Importing this package registers every job and task."""

from expensebot.jobs import budget_limits

__all__ = ["budget_limits"]
