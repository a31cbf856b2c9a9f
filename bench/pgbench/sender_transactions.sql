-- What the sender (worker/sender.py drain) commits for one inbound message's two outbox
-- rows (read receipt, reply), without the two HTTP calls: one transaction takes the lease
-- and the batch (both rows, marked sending), one stores both answers, renews the lease
-- (its row lock), looks for more and lets go. Not run alone: bench/pgbench.py appends it
-- to inbound_message.sql (same :uid), so one pgbench "transaction" is all the database
-- work of one message, inbound and outbound.
BEGIN;
UPDATE contacts SET sender_lease_until = now() + interval '60 seconds'
  WHERE user_key = '1888' || :uid AND (sender_lease_until IS NULL OR sender_lease_until <= now());
SELECT o.id, o.kind, o.phone_number_id, o.to_phone, o.to_user_id, o.content, o.attempts, o.inbound_wamid,
    o.created_at, o.next_attempt_at, c.send_not_before
  FROM outbound_messages o LEFT JOIN contacts c ON c.user_key = o.user_key
  WHERE o.user_key = '1888' || :uid AND o.status IN ('pending', 'sending') ORDER BY o.id LIMIT 20 FOR UPDATE OF o;
UPDATE outbound_messages SET status = 'sending', attempts = attempts + 1, updated_at = now()
  WHERE user_key = '1888' || :uid AND status = 'pending';
END;
BEGIN;
UPDATE outbound_messages SET status = CASE WHEN status = 'pending' THEN 'accepted' WHEN status = 'sending' THEN 'accepted'
    ELSE status END, wamid = coalesce(NULL, wamid), last_error = NULL, last_error_code = NULL, updated_at = now()
  WHERE id = (SELECT min(id) FROM outbound_messages WHERE user_key = '1888' || :uid AND status = 'sending');
UPDATE outbound_messages SET status = CASE WHEN status = 'pending' THEN 'accepted' WHEN status = 'sending' THEN 'accepted'
    ELSE status END, wamid = coalesce('wamid.PGBOUT' || gen_random_uuid(), wamid), last_error = NULL,
    last_error_code = NULL, updated_at = now()
  WHERE id = (SELECT min(id) FROM outbound_messages WHERE user_key = '1888' || :uid AND status = 'sending');
UPDATE contacts SET send_not_before = NULL, pair_limit_hits = 0 WHERE user_key = '1888' || :uid AND pair_limit_hits > 0;
UPDATE contacts SET sender_lease_until = now() + interval '60 seconds' WHERE user_key = '1888' || :uid;
SELECT o.id FROM outbound_messages o LEFT JOIN contacts c ON c.user_key = o.user_key
  WHERE o.user_key = '1888' || :uid AND o.status IN ('pending', 'sending') ORDER BY o.id LIMIT 20 FOR UPDATE OF o;
UPDATE contacts SET sender_lease_until = NULL WHERE user_key = '1888' || :uid;
END;
