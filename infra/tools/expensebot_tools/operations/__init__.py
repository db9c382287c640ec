"""`expensebot ops`: the operator's commands against a deployment (AWS or `local up`): tasks, queues, runs,
DLQs, schedules, the webhook, history, logs and the dashboard. Nothing here starts a local service."""
