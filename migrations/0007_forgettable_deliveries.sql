-- Deleting a call forgets every stored byte that names it (privacy requests).
--
-- Delivery rows are deduplicated by a digest of the provider's key (`k1:` + hex, computed by
-- the worker), so the primary key never names a call; the provider's own key is kept beside it
-- for operators in `provider_ref`, and `call_id` is recorded for every delivery that names a
-- call, whatever its outcome, so the deletion can find and blank them. New deletion marks
-- hold a digest of the call id (`c1:` + hex) for the same reason.

ALTER TABLE webhook_deliveries ADD COLUMN provider_ref TEXT;
UPDATE webhook_deliveries SET provider_ref = delivery_key;

-- Rows written before this migration recorded no call for deliveries without an applied event
-- (unknown types, transcript updates, unattributed deliveries): take it from what they kept.
UPDATE webhook_deliveries SET call_id = COALESCE(
    CASE WHEN json_valid(payload) THEN COALESCE(
      json_extract(payload, '$.call.call_id'),
      json_extract(payload, '$.data.callId'),
      json_extract(payload, '$.data.id'),
      json_extract(payload, '$.events[0].call_id'))
    END,
    -- Twilio voice keys are `<CallSid>:…` (recording keys name the recording), Retell keys
    -- `<call_id>:<event>`.
    CASE WHEN instr(delivery_key, ':') > 1
          AND (provider = 'retell' OR (provider = 'twilio' AND delivery_key LIKE 'CA%'))
      THEN substr(delivery_key, 1, instr(delivery_key, ':') - 1)
    END)
 WHERE call_id IS NULL;

-- Calls deleted before this migration: forget what still names them now.
UPDATE webhook_deliveries
   SET call_id = NULL, payload = NULL, provider_ref = NULL,
       delivery_key = 'forgotten:' || lower(hex(randomblob(16)))
 WHERE call_id IN (SELECT call_id FROM deleted_calls);
