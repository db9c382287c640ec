-- Currencies and incomes (issue 15). Every amount gets its ISO 4217 currency; what was stored before is in
-- the configured default currency (DEFAULT_CURRENCY, RUB unless set), which the migration runner passes as
-- the transaction-local setting expensebot.default_currency. Nothing is converted: an amount keeps its value.

DO $$
DECLARE
    fallback text := upper(coalesce(nullif(current_setting('expensebot.default_currency', true), ''), 'RUB'));
BEGIN
    IF fallback !~ '^[A-Z]{3}$' THEN
        RAISE EXCEPTION 'expensebot.default_currency %: not an ISO 4217 code', fallback;
    END IF;
    -- The default is the configured currency at migration time, so rows written by code that does not name
    -- a currency yet land in it; the application names the currency on every row it writes.
    EXECUTE format('ALTER TABLE users ADD COLUMN currency char(3) NOT NULL DEFAULT %L', fallback);
    EXECUTE format('ALTER TABLE expenses ADD COLUMN currency char(3) NOT NULL DEFAULT %L', fallback);
    EXECUTE format('ALTER TABLE budgets ADD COLUMN currency char(3) NOT NULL DEFAULT %L', fallback);
    EXECUTE format('ALTER TABLE recurring_payments ADD COLUMN currency char(3) NOT NULL DEFAULT %L', fallback);
END
$$;

ALTER TABLE users ADD CONSTRAINT users_currency_iso CHECK (currency ~ '^[A-Z]{3}$');
ALTER TABLE expenses ADD CONSTRAINT expenses_currency_iso CHECK (currency ~ '^[A-Z]{3}$');
ALTER TABLE budgets ADD CONSTRAINT budgets_currency_iso CHECK (currency ~ '^[A-Z]{3}$');
ALTER TABLE recurring_payments ADD CONSTRAINT recurring_payments_currency_iso CHECK (currency ~ '^[A-Z]{3}$');

-- A recurring payment books an expense; a recurring income (`/recurring 10 +50000 зарплата`) books an income.
ALTER TABLE recurring_payments
    ADD COLUMN kind text NOT NULL DEFAULT 'expense' CHECK (kind IN ('expense', 'income'));

-- Incomes beside expenses: the same shape, the same once-per-due-date guarantee for recurring ones.
CREATE TABLE incomes (
    id                   bigserial PRIMARY KEY,
    user_id              bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    amount               numeric(14, 2) NOT NULL CHECK (amount > 0),
    currency             char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    category             text NOT NULL,
    description          text NOT NULL,
    received_at          timestamptz NOT NULL,
    created_at           timestamptz NOT NULL,
    source_update_id     bigint,
    recurring_payment_id bigint REFERENCES recurring_payments ON DELETE SET NULL,
    due_date             date,
    CONSTRAINT incomes_recurring_once UNIQUE (recurring_payment_id, due_date)
);
-- A user's month (reports, exports, the balance) reads incomes by user and time, as it reads expenses.
CREATE INDEX incomes_user_received ON incomes (user_id, received_at);
