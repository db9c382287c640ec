-- What a run did beyond planning and enqueuing (rows deleted by the cleanup, its continuations, a day
-- skipped by the monthly report's last-day rule, ...). Continuations running on a queue add to the
-- counters of the run that started them, so the ledger shows the whole run, not only its first part.
ALTER TABLE job_runs ADD COLUMN details jsonb NOT NULL DEFAULT '{}'::jsonb;

-- The admin report and `ops status` read the runs of the last day, per job.
CREATE INDEX job_runs_job_started_at ON job_runs (job, started_at);
DROP INDEX job_runs_started_at;
