-- What the sender (worker/sender.py drain) commits for one inbound message's two outbox
-- rows (read receipt, reply), without the two HTTP calls: lease, then per row renew+take
-- and mark-accepted, a last empty take, release, the has-open check. Not run alone:
-- bench/pgbench.py appends it to inbound_message.sql (same :uid), so one pgbench
-- "transaction" is all the database work of one message, inbound and outbound.
BEGIN;
UPDATE contacts SET sender_lease_until = now() + interval '60 seconds'
  WHERE user_key = '1888' || :uid AND (sender_lease_until IS NULL OR sender_lease_until <= now());
END;
BEGIN;
UPDATE contacts SET sender_lease_until = now() + interval '60 seconds' WHERE user_key = '1888' || :uid;
SELECT id, kind, phone_number_id, to_phone, to_user_id, content, attempts, next_attempt_at FROM outbound_messages
  WHERE user_key = '1888' || :uid AND status IN ('pending', 'sending') ORDER BY id LIMIT 1 FOR UPDATE;
SELECT * FROM contacts WHERE user_key = '1888' || :uid;
UPDATE outbound_messages SET status = 'sending', attempts = attempts + 1, updated_at = now()
  WHERE id = (SELECT id FROM outbound_messages WHERE user_key = '1888' || :uid AND status = 'pending' ORDER BY id LIMIT 1);
END;
BEGIN;
SELECT * FROM outbound_messages WHERE user_key = '1888' || :uid AND status = 'sending' ORDER BY id LIMIT 1 FOR UPDATE;
UPDATE outbound_messages SET status = 'accepted', wamid = 'wamid.PGBOUT' || gen_random_uuid(), last_error = NULL,
    last_error_code = NULL, updated_at = now()
  WHERE id = (SELECT id FROM outbound_messages WHERE user_key = '1888' || :uid AND status = 'sending' ORDER BY id LIMIT 1);
UPDATE contacts SET send_not_before = NULL, pair_limit_hits = 0 WHERE user_key = '1888' || :uid AND pair_limit_hits > 0;
END;
BEGIN;
UPDATE contacts SET sender_lease_until = now() + interval '60 seconds' WHERE user_key = '1888' || :uid;
SELECT id, kind, phone_number_id, to_phone, to_user_id, content, attempts, next_attempt_at FROM outbound_messages
  WHERE user_key = '1888' || :uid AND status IN ('pending', 'sending') ORDER BY id LIMIT 1 FOR UPDATE;
SELECT * FROM contacts WHERE user_key = '1888' || :uid;
UPDATE outbound_messages SET status = 'sending', attempts = attempts + 1, updated_at = now()
  WHERE id = (SELECT id FROM outbound_messages WHERE user_key = '1888' || :uid AND status = 'pending' ORDER BY id LIMIT 1);
END;
BEGIN;
SELECT * FROM outbound_messages WHERE user_key = '1888' || :uid AND status = 'sending' ORDER BY id LIMIT 1 FOR UPDATE;
UPDATE outbound_messages SET status = 'accepted', wamid = 'wamid.PGBOUT' || gen_random_uuid(), last_error = NULL,
    last_error_code = NULL, updated_at = now()
  WHERE id = (SELECT id FROM outbound_messages WHERE user_key = '1888' || :uid AND status = 'sending' ORDER BY id LIMIT 1);
UPDATE contacts SET send_not_before = NULL, pair_limit_hits = 0 WHERE user_key = '1888' || :uid AND pair_limit_hits > 0;
END;
BEGIN;
UPDATE contacts SET sender_lease_until = now() + interval '60 seconds' WHERE user_key = '1888' || :uid;
SELECT id FROM outbound_messages
  WHERE user_key = '1888' || :uid AND status IN ('pending', 'sending') ORDER BY id LIMIT 1 FOR UPDATE;
END;
BEGIN;
UPDATE contacts SET sender_lease_until = NULL WHERE user_key = '1888' || :uid;
END;
BEGIN;
SELECT id FROM outbound_messages WHERE user_key = '1888' || :uid AND status IN ('pending', 'sending') LIMIT 1;
END;
