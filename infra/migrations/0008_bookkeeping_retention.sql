-- Retention of the bookkeeping tables: the Sunday cleanup prunes processed_updates, notifications and
-- job_runs oldest first, in batches (expensebot/retention.py), and `ops status` shows each table's oldest row.
-- Each batch is "the oldest N rows before the cutoff", which needs an index ordered by the table's time:
--   processed_updates (processed_at): has one since 0001.
--   notifications (created_at): notifications_kind_created (0001) leads with kind, so a range over every kind
--     would read the whole index; this one is a range scan from its start.
--   job_runs (started_at): 0002 replaced it by (job, started_at) for the per-job reads; pruning reads across
--     jobs, and so does `ops status` (the latest runs, ORDER BY started_at DESC LIMIT n).
-- Like every migration they run in one transaction, so not CONCURRENTLY: each build blocks writes to its
-- table while it runs (notifications has grown by a row per message sent until now); deploy at a quiet hour.
CREATE INDEX notifications_created_at ON notifications (created_at);
CREATE INDEX job_runs_started_at ON job_runs (started_at);
