-- send_monthly_reports: one row per user and month whose report has been taken on by a worker. The primary
-- key is the "once per user per month": the planner skips users who have a row, and a duplicate delivery
-- of the same unit finds the row and goes on to the notification's claim (dedupe key
-- monthly_report:{user_id}:{YYYY-MM}), which knows whether the message already went out.
-- On-demand reports (/report) have no row here: each request is its own notification.
CREATE TABLE monthly_reports (
    user_id        bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    month          date NOT NULL CHECK (EXTRACT(DAY FROM month) = 1),   -- first day of the month
    total          numeric(14, 2) NOT NULL,                             -- as the report showed it
    expense_count  integer NOT NULL,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (user_id, month)
);
-- The planner's anti-join probes (user_id, month) through the primary key; the users with expenses in a
-- month come from expenses_user_spent_at (0001), one index probe per active user.
