-- ExpenseBot schema: the bot's data, and the bookkeeping that makes every effect idempotent under
-- at-least-once delivery (SQS, EventBridge Scheduler and Telegram's webhook all deliver twice sometimes).
-- Timestamps are timestamptz; the session zone is the application's zone (APP_TIMEZONE).

CREATE TABLE users (
    user_id            bigint PRIMARY KEY,            -- Telegram user id
    chat_id            bigint NOT NULL,                -- private chat with the bot (equal to user_id)
    username           text,
    first_name         text,
    language_code      text NOT NULL DEFAULT 'ru',
    is_active          boolean NOT NULL DEFAULT true,  -- false once Telegram answers 403 / chat not found
    deactivated_reason text,
    created_at         timestamptz NOT NULL,
    last_seen_at       timestamptz NOT NULL
);
-- The admin report counts new and active users of the last day.
CREATE INDEX users_created_at ON users (created_at);
CREATE INDEX users_last_seen_at ON users (last_seen_at);

CREATE TABLE recurring_payments (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    day_of_month  smallint NOT NULL CHECK (day_of_month BETWEEN 1 AND 31),
    amount        numeric(14, 2) NOT NULL CHECK (amount > 0),
    description   text NOT NULL,
    category      text NOT NULL,
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL
);
CREATE INDEX recurring_payments_active ON recurring_payments (day_of_month) WHERE is_active;

CREATE TABLE expenses (
    id                   bigserial PRIMARY KEY,
    user_id              bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    amount               numeric(14, 2) NOT NULL CHECK (amount > 0),
    category             text NOT NULL,
    description          text NOT NULL,
    spent_at             timestamptz NOT NULL,
    created_at           timestamptz NOT NULL,
    source_update_id     bigint,                       -- the Telegram update that recorded it
    recurring_payment_id bigint REFERENCES recurring_payments ON DELETE SET NULL,
    due_date             date,                         -- for a booked recurring payment
    -- A recurring payment is booked at most once per due date, whatever the redeliveries.
    CONSTRAINT expenses_recurring_once UNIQUE (recurring_payment_id, due_date)
);
-- One user's month (the bot's replies, a report) reads only this index: the INCLUDE columns make it an
-- index-only scan. The budget check over all users ranges over spent_at (the index below).
CREATE INDEX expenses_user_spent_at ON expenses (user_id, spent_at) INCLUDE (amount, category);
-- Retention cleanup walks the oldest rows first; the admin report counts yesterday's expenses.
CREATE INDEX expenses_spent_at ON expenses (spent_at);

CREATE TABLE budgets (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    category    text,                                   -- NULL: the whole month's budget
    amount      numeric(14, 2) NOT NULL CHECK (amount > 0),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
-- One monthly budget per user and one per category (NULL counts as a value here).
CREATE UNIQUE INDEX budgets_one_per_category ON budgets (user_id, (COALESCE(category, '')));

-- Which thresholds of a budget have been alerted in a month: the planner sends only a higher one.
CREATE TABLE budget_alerts (
    budget_id   bigint NOT NULL REFERENCES budgets ON DELETE CASCADE,
    month       date NOT NULL,                          -- first day of the month
    threshold   integer NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (budget_id, month, threshold)
);

-- Every message the workers send: claimed before the send, confirmed after it. The dedupe key makes a
-- duplicate delivery of the same unit a no-op once the first has been sent.
CREATE TABLE notifications (
    id                  bigserial PRIMARY KEY,
    dedupe_key          text NOT NULL UNIQUE,
    kind                text NOT NULL,
    user_id             bigint REFERENCES users ON DELETE SET NULL,
    chat_id             bigint NOT NULL,
    status              text NOT NULL CHECK (status IN ('sending', 'sent', 'failed', 'dropped')),
    attempts            integer NOT NULL DEFAULT 0,
    lease_until         timestamptz,                    -- a claim in 'sending' is someone's until then
    created_at          timestamptz NOT NULL,
    sent_at             timestamptz,
    telegram_message_id bigint,
    last_error          text
);
CREATE INDEX notifications_kind_created ON notifications (kind, created_at);

-- The run ledger: one row per (job, scheduled slot). EventBridge Scheduler keeps no history, and its
-- execution id changes with every retry, so the slot is the scheduled time.
CREATE TABLE job_runs (
    id            bigserial PRIMARY KEY,
    job           text NOT NULL,
    slot          timestamptz NOT NULL,
    status        text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    attempts      integer NOT NULL DEFAULT 1,
    execution_id  text,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    planned       integer,
    enqueued      integer,
    error         text,
    CONSTRAINT job_runs_once_per_slot UNIQUE (job, slot)
);
CREATE INDEX job_runs_started_at ON job_runs (started_at);

-- Telegram redelivers an update when our answer is slow or fails; each update_id is processed once.
CREATE TABLE processed_updates (
    update_id     bigint PRIMARY KEY,
    processed_at  timestamptz NOT NULL,
    outcome       text NOT NULL
);
CREATE INDEX processed_updates_processed_at ON processed_updates (processed_at);
