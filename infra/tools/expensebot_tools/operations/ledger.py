"""What the job-run ledger says went wrong, shared by `ops status` and `ops doctor`."""

from __future__ import annotations

from typing import Any

# Slots that never succeeded: a run failed, or stale (its lease ran out), that no later attempt of the same
# slot turned into a success (a takeover reuses the slot's row, so a success replaces it here); and each
# month, since the monthly report job first ran, whose reports no succeeded run covered (its last-day run
# records `month`, a catch-up `caught_up`). Months are the session's, i.e. the application's zone.
_MISSED_SLOTS = """
SELECT job, slot, status, attempts, error,
       CASE WHEN status = 'failed' THEN 'failed' ELSE 'stale: its attempt stopped renewing the lease' END
           AS problem
  FROM job_runs
 WHERE status = 'failed'
    OR ({lease_ran_out})
UNION ALL
SELECT %(monthly_job)s, month + interval '1 month' - interval '4 hours',  -- the last day's 20:00 slot
       'no success', NULL, NULL,
       'the reports of ' || to_char(month, 'YYYY-MM') || ' never went out'
  FROM generate_series((SELECT date_trunc('month', min(slot)) FROM job_runs WHERE job = %(monthly_job)s),
                       date_trunc('month', %(now)s::timestamptz) - interval '1 month', interval '1 month') month
 WHERE NOT EXISTS (SELECT 1 FROM job_runs r
                    WHERE r.job = %(monthly_job)s AND r.status = 'succeeded'
                      AND to_char(month, 'YYYY-MM') IN (r.details ->> 'month', r.details ->> 'caught_up'))
 ORDER BY slot DESC, job, status
 LIMIT 100
"""


def missed_slot_rows(runtime: Any) -> list[dict[str, Any]]:
    from expensebot.jobs.monthly_reports import JOB as MONTHLY_REPORTS
    from expensebot.scheduling import lease_parameters, lease_ran_out

    params = {**lease_parameters(runtime), "monthly_job": MONTHLY_REPORTS}
    return [dict(row) for row in runtime.db.fetch_all(_MISSED_SLOTS.format(lease_ran_out=lease_ran_out()), params)]
