-- Global pacing of Telegram sends (expensebot/pacing.py). Every worker reserves its next send time here,
-- so all concurrent workers together stay under the bot's limits.
--
-- UNLOGGED: written on every send, and worth nothing after a crash (the pacing simply starts afresh),
-- so the rows skip the write-ahead log. They are also not copied to replicas, which never pace anything.
CREATE UNLOGGED TABLE telegram_pacing (
    bot_id        text PRIMARY KEY,                  -- the token's numeric part: one token, one budget
    next_send_at  timestamptz NOT NULL,              -- the bot's next free send time
    paused_until  timestamptz,                       -- after a 429: nobody sends before this
    rate_factor   double precision NOT NULL DEFAULT 1.0 CHECK (rate_factor > 0 AND rate_factor <= 1)
);

CREATE UNLOGGED TABLE chat_pacing (
    bot_id        text NOT NULL,
    chat_id       bigint NOT NULL,
    next_send_at  timestamptz NOT NULL,              -- one message per second to a chat, 20 a minute to a group
    PRIMARY KEY (bot_id, chat_id)
);

-- A message held back by pacing or a 429 gives its claim up until it comes back.
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('sending', 'sent', 'failed', 'dropped', 'held'));
