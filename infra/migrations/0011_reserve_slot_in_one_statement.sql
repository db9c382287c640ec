-- The send slot taken in one statement (expensebot/pacing.py). Before, a worker locked the bot's row, read
-- it, planned the slot in Python and wrote it back in three more client round trips, then committed: the
-- row every send of the bot needs was held across four round trips (1–4 ms to RDS through RDS Proxy), which
-- capped the whole bot at a few hundred to a thousand sends per second however many workers ran.
--
-- reserve_telegram_slot() does the same rule (pacing.plan_send is its readable model, and a test holds the
-- two to the same answers) inside the server. The caller runs it in autocommit, as the last step of the
-- statement that claims the message part, so the server commits before it answers: the bot's row is held for
-- the function's own microseconds, never across a round trip. The chat's row is taken first and the bot's
-- last, just before the commit.
--
-- When the bot's slot is further off than p_max_wait, or the chat is not free by the bot's slot, nothing is
-- taken: the function raises SQLSTATE EBHLD with the wait and its reason ('paused', 'bot' or 'chat') as JSON
-- in DETAIL, which rolls back the claim with everything else (a held message leaves nothing claimed and no
-- slot booked). The caller sleeps out a short wait for the chat and asks again, and holds the message back
-- otherwise.
--
-- The commit does not wait for the write-ahead log to reach the disk (synchronous_commit off for this
-- transaction only). The pacing rows are UNLOGGED anyway; the only logged row is the claim ('sending' with a
-- lease), and losing it in a server crash changes nothing a crash does not already: a message whose claim was
-- lost is claimed and sent again, as it would be once the lost worker's lease ran out. Waiting for the flush
-- would hold the bot's row for the disk's latency on every send.
CREATE FUNCTION reserve_telegram_slot(
    p_bot text,
    p_chat bigint,
    p_now timestamptz,
    p_global_interval double precision,  -- seconds between two sends of the bot at full rate
    p_chat_interval double precision,    -- seconds between two sends to one private chat
    p_group_interval double precision,   -- seconds between two sends to one group (chat id < 0)
    p_max_wait double precision,         -- the furthest slot taken; beyond it the message is held back
    p_slowest_rate_factor double precision,
    p_recovery_per_send double precision,
    OUT send_at timestamptz,
    OUT rate_factor double precision
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    -- No slot is ever booked further ahead than this, so a time beyond it means the clock went back (a
    -- virtual clock replaying a period, a host's clock corrected): it is forgotten.
    horizon constant timestamptz :=
        p_now + make_interval(secs => p_max_wait + greatest(p_chat_interval, p_group_interval) + 1);
    chat_next timestamptz;
    bot_next timestamptz;
    paused timestamptz;
    bot_rate double precision;
    slot timestamptz;
    wait double precision;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);

    -- Each row is locked, not rewritten, until its one UPDATE; one the bot or chat does not have yet is created
    -- at now, as one idle until now (two workers creating it at once: one inserts, both then lock it).
    SELECT c.next_send_at INTO chat_next FROM chat_pacing c WHERE c.bot_id = p_bot AND c.chat_id = p_chat FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO chat_pacing AS c (bot_id, chat_id, next_send_at) VALUES (p_bot, p_chat, p_now)
        ON CONFLICT (bot_id, chat_id) DO NOTHING
        RETURNING c.next_send_at INTO chat_next;
        IF NOT FOUND THEN  -- another worker created it meanwhile
            SELECT c.next_send_at INTO chat_next FROM chat_pacing c WHERE c.bot_id = p_bot AND c.chat_id = p_chat
               FOR UPDATE;
        END IF;
    END IF;
    IF chat_next > horizon THEN
        chat_next := p_now;
    END IF;

    SELECT b.next_send_at, b.paused_until, b.rate_factor INTO bot_next, paused, bot_rate
      FROM telegram_pacing b WHERE b.bot_id = p_bot FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO telegram_pacing (bot_id, next_send_at, rate_factor) VALUES (p_bot, p_now, 1.0)
        ON CONFLICT (bot_id) DO NOTHING;
        SELECT b.next_send_at, b.paused_until, b.rate_factor INTO bot_next, paused, bot_rate
          FROM telegram_pacing b WHERE b.bot_id = p_bot FOR UPDATE;
    END IF;
    IF paused <= p_now THEN
        paused := NULL;
    END IF;
    IF bot_next > horizon AND (paused IS NULL OR bot_next > paused + interval '1 second') THEN
        bot_next := p_now;
    END IF;

    slot := greatest(p_now, bot_next, paused);  -- greatest() skips a NULL pause
    IF chat_next > slot THEN
        -- The chat is not free by the bot's slot: nothing is booked (booking the bot's slot at the chat's time
        -- would push the bot's whole schedule ahead for every other chat); the caller asks again then.
        RAISE EXCEPTION 'the chat is not free for % s', round(extract(epoch FROM chat_next - p_now)::numeric, 3)
            USING ERRCODE = 'EBHLD',
                  DETAIL = json_build_object('wait', extract(epoch FROM chat_next - p_now), 'reason', 'chat')::text;
    END IF;
    wait := extract(epoch FROM slot - p_now);
    IF wait > p_max_wait THEN
        RAISE EXCEPTION 'the send slot is % s away', round(wait::numeric, 3)
            USING ERRCODE = 'EBHLD',
                  DETAIL = json_build_object(
                      'wait', wait,
                      'reason', CASE WHEN paused IS NOT NULL AND slot = paused THEN 'paused' ELSE 'bot' END)::text;
    END IF;

    UPDATE chat_pacing c
       SET next_send_at = slot + make_interval(secs => CASE WHEN p_chat < 0 THEN p_group_interval
                                                            ELSE p_chat_interval END)
     WHERE c.bot_id = p_bot AND c.chat_id = p_chat;
    UPDATE telegram_pacing b
       SET next_send_at = slot + make_interval(secs => p_global_interval / greatest(p_slowest_rate_factor, bot_rate)),
           rate_factor = least(1.0, bot_rate + p_recovery_per_send)
     WHERE b.bot_id = p_bot;
    send_at := slot;
    rate_factor := least(1.0, bot_rate + p_recovery_per_send);
END
$$;
