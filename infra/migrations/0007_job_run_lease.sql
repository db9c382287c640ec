-- A run's lease: the attempt that opened (or took over) a run holds it until lease_until and renews it
-- while it works. An attempt that died stops renewing, so the next delivery of the same slot takes the run
-- over as soon as the lease has run out, instead of waiting out the hard time limit (600 s) behind a row
-- still marked 'running'. lease_holder is a token of the attempt, not Scheduler's execution id: Lambda's
-- async retries re-send the same event, execution id included.
ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS lease_holder text;
ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS lease_until timestamptz;

-- Runs opened by the code before this migration keep the old rule: theirs until the hard limit.
UPDATE job_runs
   SET lease_until = started_at + interval '600 seconds'
 WHERE status = 'running' AND lease_until IS NULL;

-- `ops status` lists the slots that never succeeded; they are few among many succeeded runs.
CREATE INDEX IF NOT EXISTS job_runs_unsettled ON job_runs (job, slot) WHERE status <> 'succeeded';
