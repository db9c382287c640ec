-- Budgets per period (issue 15): a budget is for a day, a week (Monday to Sunday) or a month, in the
-- application's time zone. Every budget stored before was a month's, and stays one.
ALTER TABLE budgets
    ADD COLUMN period text NOT NULL DEFAULT 'month' CHECK (period IN ('day', 'week', 'month'));

-- One budget per user, period and category (NULL, the whole period's budget, counts as a value here): a
-- user may keep 30,000 a month and 1,000 a day side by side, and setting one again replaces it.
DROP INDEX budgets_one_per_category;
CREATE UNIQUE INDEX budgets_one_per_period_category ON budgets (user_id, period, (COALESCE(category, '')));

-- The thresholds alerted are remembered per period: a new day, week or month starts clean. The key was the
-- month's first day, which is exactly the month period's start, so the rows alerted so far carry over as
-- they are (renaming keeps the primary key (budget_id, period_start, threshold)).
ALTER TABLE budget_alerts RENAME COLUMN month TO period_start;
COMMENT ON COLUMN budget_alerts.period_start IS 'first day of the budget''s period (day, Monday, 1st) in APP_TIMEZONE';

-- A budget counts only the expenses in its currency (0009), so every read of spending by time range now
-- filters on expenses.currency too. Without it in the covering indexes each row of the range would cost a
-- visit to the table again (see 0005): the budget check over every user reads expenses_spent_at_covering,
-- a user's own period (/budget, a report) reads expenses_user_spent_at. Like every migration this runs in
-- one transaction, so not CONCURRENTLY: each build blocks writes to expenses for a few seconds at 5M rows.
DROP INDEX expenses_spent_at_covering;
CREATE INDEX expenses_spent_at_covering ON expenses (spent_at) INCLUDE (user_id, category, amount, currency);
DROP INDEX expenses_user_spent_at;
CREATE INDEX expenses_user_spent_at ON expenses (user_id, spent_at) INCLUDE (amount, category, currency);
