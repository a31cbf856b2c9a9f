-- The worker's own per-message transaction (conversation/turn.py process_event on
-- Postgres): template revision read, dedupe insert, contact upsert (the per-user lock),
-- locked read of the conversation, state update, outbox inserts (read receipt + reply),
-- outcome update. One pgbench "transaction" = one inbound message.
\set uid random(1, 50000)
BEGIN;
SELECT revision FROM template_revision WHERE id = 1;
INSERT INTO inbound_messages (wamid, user_key, phone_number_id, message_type, sent_at, received_at, payload, outcome)
  VALUES ('wamid.PGB' || gen_random_uuid(), '1888' || :uid, '100000000000001', 'text', now(), now(),
          '{"from": "18880000001", "id": "wamid.PGB", "timestamp": "1800000000", "type": "text", "text": {"body": "2"}}',
          'processing')
  ON CONFLICT (wamid) DO NOTHING RETURNING id AS inbound_id \gset
INSERT INTO contacts (user_key, phone_number, profile_name, last_seen_at, pair_limit_hits)
  VALUES ('1888' || :uid, '1888' || :uid, 'Test User', now(), 0)
  ON CONFLICT (user_key) DO UPDATE SET last_seen_at = excluded.last_seen_at,
    phone_number = coalesce(excluded.phone_number, contacts.phone_number),
    user_id = coalesce(excluded.user_id, contacts.user_id),
    profile_name = coalesce(excluded.profile_name, contacts.profile_name)
  RETURNING last_fallback_at, profile_name;
SELECT conversation_flow, current_step, context, expires_at, last_interaction FROM conversation_state
  WHERE user_key = '1888' || :uid FOR UPDATE;
INSERT INTO conversation_state (id, user_key, phone_number, conversation_flow, current_step, context,
    last_interaction, expires_at, created_at, updated_at)
  VALUES (gen_random_uuid(), '1888' || :uid, '1888' || :uid, 'new_order', 'confirmation',
          '{"product": "coffee", "product_title": "Coffee", "quantity": 2}', now(), now() + interval '24 hours',
          now(), now())
  ON CONFLICT (user_key) DO UPDATE SET current_step = excluded.current_step, context = excluded.context,
    last_interaction = excluded.last_interaction, expires_at = excluded.expires_at, updated_at = excluded.updated_at;
INSERT INTO outbound_messages (user_key, phone_number_id, to_phone, kind, content, inbound_wamid, status, attempts,
    created_at, updated_at)
  VALUES ('1888' || :uid, '100000000000001', '1888' || :uid, 'mark_read', '{"message_id": "wamid.PGB"}', 'wamid.PGB',
          'pending', 0, now(), now()),
         ('1888' || :uid, '100000000000001', '1888' || :uid, 'message',
          '{"type": "interactive", "interactive": {"type": "button", "body": {"text": "You are ordering 2 x Coffee. Shall I place the order?"}, "action": {"buttons": [{"type": "reply", "reply": {"id": "confirm", "title": "Confirm"}}, {"type": "reply", "reply": {"id": "change", "title": "Change quantity"}}, {"type": "reply", "reply": {"id": "cancel", "title": "Cancel"}}]}}}',
          'wamid.PGB', 'pending', 0, now(), now())
  RETURNING id;
UPDATE inbound_messages SET outcome = 'handled' WHERE id = :inbound_id;
END;
