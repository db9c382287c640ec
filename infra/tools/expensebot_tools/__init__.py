"""ExpenseBot's dev and ops tooling: the `expensebot` CLI, the embedded local stack and the Telegram
stand-in. None of this ships in the Lambda layer."""
