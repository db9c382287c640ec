-- The latest due date booked for each recurring payment, kept on the payment itself. The planner starts
-- after it, so a booking that no longer exists (deleted by the user's /undo, or by the retention cleanup)
-- is never booked again: before, the planner read the latest booking from expenses, and an undone latest
-- booking came back the next day.
ALTER TABLE recurring_payments ADD COLUMN booked_through date;

UPDATE recurring_payments p
   SET booked_through = booked.latest
  FROM (SELECT recurring_payment_id, max(due_date) AS latest
          FROM expenses
         WHERE recurring_payment_id IS NOT NULL
         GROUP BY recurring_payment_id) booked
 WHERE booked.recurring_payment_id = p.id;
