-- A webhook's batch names its statements instead of sending them, and is one statement when
-- the delivery carries one event.
--
-- Every delivery's batch sent D1 the full text of its claim (about 2 KB: the owner's
-- resolution, the deletion marks, the outcome), of each event's upsert (0.5 to 1.3 KB) and of
-- its outcome read (0.5 KB), three statements for the usual delivery. Local D1 charges for
-- each statement of a batch and for the text it carries, though SQLite compiles each text
-- once. The same SQL now lives here, in INSTEAD OF triggers on views that hold no rows: a
-- statement inserts its parameters into a view, in the order the statements took them
-- before (`?1` provider, `?2` delivery key digest, `?3` this attempt's claim, then the
-- statement's own), and the trigger runs what the statement ran, with `NEW.x` where it had
-- `?n`. What each writes and decides is unchanged (`store::sql` documents it).
--
-- A delivery of one event inserts into one view (`call_deliveries` and the others) whose
-- trigger inserts into the claim's view, then the event's, and the statement's `RETURNING`
-- reads the outcome: on a view, `RETURNING` is evaluated after the INSTEAD OF trigger and
-- every trigger under it, so it sees the version the events left. It returns the values
-- inserted, not what the trigger wrote, so the owner's version before the events (the claim's
-- `RETURNING` before) is kept in the delivery's row, `version_before`, and read with the
-- outcome from `delivery_outcomes`.
--
-- Triggers cannot hold a `WITH`, so the claim's decision, a materialized CTE before, is a
-- subquery that `LIMIT 1 OFFSET 0` keeps from being flattened: its outcome is read five times
-- and each would otherwise repeat its lookups.

ALTER TABLE webhook_deliveries ADD COLUMN version_before INTEGER;

-- ?1 provider, ?2 delivery key digest, ?3 claim, ?4 event type, ?5 explicit user, ?6 routed
-- number, ?7 call id, ?8 has events, ?9 needs an owner, ?10 payload kept if it cannot be
-- applied, ?11 received at, ?12 reported start, ?13 the provider's own key, ?14 call id
-- digest, ?15 reports a call (`store::sql::CLAIM_DELIVERY`).
CREATE VIEW delivery_claims AS SELECT
  NULL AS provider, NULL AS delivery_key, NULL AS claim, NULL AS event_type, NULL AS user_id,
  NULL AS routed_number, NULL AS call_id, NULL AS has_events, NULL AS needs_owner,
  NULL AS kept, NULL AS received_at, NULL AS reported_start, NULL AS provider_ref,
  NULL AS call_digest, NULL AS reports_call
WHERE 0;

CREATE TRIGGER delivery_claims_insert INSTEAD OF INSERT ON delivery_claims
BEGIN
  INSERT INTO webhook_deliveries
    (provider, delivery_key, provider_ref, event_type, user_id, call_id, outcome, payload,
     received_at, claim, lift_mark, version_before)
  SELECT NEW.provider, NEW.delivery_key,
    CASE WHEN r.outcome <> 'deleted' THEN NEW.provider_ref END, NEW.event_type,
    CASE WHEN r.outcome IN ('applied', 'ignored') THEN r.user_id END,
    CASE WHEN r.outcome <> 'deleted' THEN NEW.call_id END, r.outcome,
    CASE WHEN r.outcome IN ('ignored', 'conflict', 'unattributed') THEN NEW.kept END,
    NEW.received_at, NEW.claim,
    CASE WHEN r.outcome = 'applied' AND r.marked THEN NEW.call_digest END,
    CASE WHEN r.outcome = 'applied' THEN
      (SELECT epoch FROM cache_epoch WHERE id = 1) * 1099511627776
        + COALESCE((SELECT version FROM user_versions WHERE user_id = r.user_id), 0) END
  FROM (SELECT o.user_id, o.marked, CASE
             WHEN o.deleted THEN 'deleted'
             WHEN NEW.has_events = 0 THEN 'ignored'
             WHEN o.established IS NOT NULL AND NEW.user_id IS NOT NULL
                  AND NEW.user_id <> o.established THEN 'conflict'
             WHEN o.user_id IS NULL AND NEW.needs_owner = 1 THEN 'unattributed'
             ELSE 'applied' END AS outcome
        FROM (SELECT e.established,
                COALESCE(e.established, NEW.user_id,
                         (SELECT user_id FROM phone_numbers WHERE e164 = NEW.routed_number))
                  AS user_id,
                EXISTS (SELECT 1 FROM deleted_calls
                         WHERE call_id IN (NEW.call_id, NEW.call_digest)
                           AND (NEW.reported_start IS NULL OR deleted_at >= NEW.reported_start))
                  AS deleted,
                NEW.reports_call = 1 AND EXISTS (SELECT 1 FROM deleted_calls
                  WHERE call_id IN (NEW.call_id, NEW.call_digest)) AS marked
              FROM (SELECT COALESCE((SELECT user_id FROM calls WHERE id = NEW.call_id),
                                    (SELECT user_id FROM analyses WHERE call_id = NEW.call_id),
                                    (SELECT user_id FROM enrichments WHERE call_id = NEW.call_id))
                      AS established) e) o
        LIMIT 1 OFFSET 0) r
  WHERE true
  ON CONFLICT (provider, delivery_key) DO NOTHING;
END;

-- ?4 call id, ?5 provider, ?6 direction, ?7 from, ?8 to, ?9 status, ?10 status rank,
-- ?11 answered, ?12 started at (or NULL), ?13 ended at, ?14 duration, ?15 received at,
-- ?16 event time (`store::sql::UPSERT_CALL`).
CREATE VIEW call_reports AS SELECT
  NULL AS provider, NULL AS delivery_key, NULL AS claim, NULL AS call_id, NULL AS call_provider,
  NULL AS direction, NULL AS from_number, NULL AS to_number, NULL AS status,
  NULL AS status_rank, NULL AS answered, NULL AS started_at, NULL AS ended_at,
  NULL AS duration_seconds, NULL AS received_at, NULL AS at
WHERE 0;

CREATE TRIGGER call_reports_insert INSTEAD OF INSERT ON call_reports
BEGIN
  INSERT INTO calls (id, user_id, provider, direction, from_number, to_number, status,
    status_rank, answered, started_at, ended_at, duration_seconds, created_at, updated_at)
  SELECT NEW.call_id, d.user_id, NEW.call_provider, NEW.direction, NEW.from_number,
    NEW.to_number, NEW.status, NEW.status_rank, NEW.answered, COALESCE(NEW.started_at, NEW.at),
    NEW.ended_at, NEW.duration_seconds, NEW.received_at, NEW.at
  FROM webhook_deliveries d
  WHERE d.provider = NEW.provider AND d.delivery_key = NEW.delivery_key
    AND d.claim = NEW.claim AND d.outcome = 'applied' AND d.user_id IS NOT NULL
  ON CONFLICT (id) DO UPDATE SET
    status = CASE WHEN excluded.status_rank > calls.status_rank
                  THEN excluded.status ELSE calls.status END,
    status_rank = MAX(calls.status_rank, excluded.status_rank),
    answered = MAX(calls.answered, excluded.answered),
    started_at = CASE WHEN NEW.started_at IS NOT NULL AND NEW.at >= calls.updated_at
                      THEN NEW.started_at ELSE calls.started_at END,
    ended_at = COALESCE(calls.ended_at, excluded.ended_at),
    duration_seconds = COALESCE(excluded.duration_seconds, calls.duration_seconds),
    from_number = CASE WHEN calls.from_number = '' THEN excluded.from_number
                       ELSE calls.from_number END,
    to_number = CASE WHEN calls.to_number = '' THEN excluded.to_number
                     ELSE calls.to_number END,
    updated_at = MAX(calls.updated_at, excluded.updated_at)
  WHERE calls.user_id = excluded.user_id;
END;

-- ?4 call id, ?5 recording id, ?6 url, ?7 duration, ?8 status, ?9 event time
-- (`store::sql::UPSERT_RECORDING`).
CREATE VIEW recording_reports AS SELECT
  NULL AS provider, NULL AS delivery_key, NULL AS claim, NULL AS call_id,
  NULL AS recording_id, NULL AS url, NULL AS duration_seconds, NULL AS status, NULL AS at
WHERE 0;

CREATE TRIGGER recording_reports_insert INSTEAD OF INSERT ON recording_reports
BEGIN
  INSERT INTO recordings (call_id, id, url, duration_seconds, status, updated_at)
  SELECT NEW.call_id, NEW.recording_id, NEW.url, NEW.duration_seconds, NEW.status, NEW.at
  FROM webhook_deliveries d
  WHERE d.provider = NEW.provider AND d.delivery_key = NEW.delivery_key
    AND d.claim = NEW.claim AND d.outcome = 'applied'
  ON CONFLICT (call_id) DO UPDATE SET id = excluded.id,
    url = COALESCE(excluded.url, recordings.url),
    duration_seconds = COALESCE(excluded.duration_seconds, recordings.duration_seconds),
    status = excluded.status, updated_at = excluded.updated_at
  WHERE (excluded.status <> 'in-progress') >= (recordings.status <> 'in-progress');
END;

-- ?4 call id, ?5 status, ?6 intent, ?7 confidence, ?8 summary, ?9 completed at, ?10 event
-- time (`store::sql::UPSERT_ANALYSIS`).
CREATE VIEW analysis_reports AS SELECT
  NULL AS provider, NULL AS delivery_key, NULL AS claim, NULL AS call_id, NULL AS status,
  NULL AS intent, NULL AS confidence, NULL AS summary, NULL AS completed_at, NULL AS at
WHERE 0;

CREATE TRIGGER analysis_reports_insert INSTEAD OF INSERT ON analysis_reports
BEGIN
  INSERT INTO analyses (call_id, user_id, status, intent, confidence, summary, completed_at,
    updated_at)
  SELECT NEW.call_id, d.user_id, NEW.status, NEW.intent, NEW.confidence, NEW.summary,
    NEW.completed_at, NEW.at
  FROM webhook_deliveries d
  WHERE d.provider = NEW.provider AND d.delivery_key = NEW.delivery_key
    AND d.claim = NEW.claim AND d.outcome = 'applied' AND d.user_id IS NOT NULL
  ON CONFLICT (call_id) DO UPDATE SET status = excluded.status, intent = excluded.intent,
    confidence = excluded.confidence, summary = excluded.summary,
    completed_at = excluded.completed_at, updated_at = excluded.updated_at
  WHERE analyses.user_id = excluded.user_id
    AND excluded.updated_at >= analyses.updated_at
    AND NOT (analyses.status = 'completed' AND excluded.status = 'pending');
END;

-- ?4 call id, ?5 phone, ?6 caller name, ?7 caller type, ?8 line type, ?9 carrier, ?10 spam
-- score, ?11 event time (`store::sql::UPSERT_ENRICHMENT`).
CREATE VIEW enrichment_reports AS SELECT
  NULL AS provider, NULL AS delivery_key, NULL AS claim, NULL AS call_id,
  NULL AS phone_number, NULL AS caller_name, NULL AS caller_type, NULL AS line_type,
  NULL AS carrier, NULL AS spam_score, NULL AS at
WHERE 0;

CREATE TRIGGER enrichment_reports_insert INSTEAD OF INSERT ON enrichment_reports
BEGIN
  INSERT INTO enrichments (call_id, user_id, phone_number, caller_name, caller_type, line_type,
    carrier, spam_score, updated_at)
  SELECT NEW.call_id, d.user_id, NEW.phone_number, NEW.caller_name, NEW.caller_type,
    NEW.line_type, NEW.carrier, NEW.spam_score, NEW.at
  FROM webhook_deliveries d
  WHERE d.provider = NEW.provider AND d.delivery_key = NEW.delivery_key
    AND d.claim = NEW.claim AND d.outcome = 'applied' AND d.user_id IS NOT NULL
  ON CONFLICT (call_id) DO UPDATE SET phone_number = excluded.phone_number,
    caller_name = excluded.caller_name, caller_type = excluded.caller_type,
    line_type = excluded.line_type, carrier = excluded.carrier,
    spam_score = excluded.spam_score, updated_at = excluded.updated_at
  WHERE enrichments.user_id = excluded.user_id
    AND excluded.updated_at >= enrichments.updated_at;
END;

-- A delivery of one event, the usual case, is one statement: its claim and its event's write
-- in one insert (`store::sql::CLAIM_AND_CALL` and the others), whose trigger inserts into the
-- two views above in that order. ?1 to ?15 as `delivery_claims`, then the event's own, as its
-- view takes them after its first three.

-- ?16 call id, ?17 provider, ?18 direction, ?19 from, ?20 to, ?21 status, ?22 status rank,
-- ?23 answered, ?24 started at, ?25 ended at, ?26 duration, ?27 received at, ?28 event time.
CREATE VIEW call_deliveries AS SELECT
  NULL AS provider, NULL AS delivery_key, NULL AS claim, NULL AS event_type, NULL AS user_id,
  NULL AS routed_number, NULL AS call_id, NULL AS has_events, NULL AS needs_owner,
  NULL AS kept, NULL AS received_at, NULL AS reported_start, NULL AS provider_ref,
  NULL AS call_digest, NULL AS reports_call,
  NULL AS event_call_id, NULL AS call_provider, NULL AS direction, NULL AS from_number,
  NULL AS to_number, NULL AS status, NULL AS status_rank, NULL AS answered,
  NULL AS started_at, NULL AS ended_at, NULL AS duration_seconds, NULL AS event_received_at,
  NULL AS at
WHERE 0;

CREATE TRIGGER call_deliveries_insert INSTEAD OF INSERT ON call_deliveries
BEGIN
  INSERT INTO delivery_claims VALUES (NEW.provider, NEW.delivery_key, NEW.claim,
    NEW.event_type, NEW.user_id, NEW.routed_number, NEW.call_id, NEW.has_events,
    NEW.needs_owner, NEW.kept, NEW.received_at, NEW.reported_start, NEW.provider_ref,
    NEW.call_digest, NEW.reports_call);
  INSERT INTO call_reports VALUES (
    NEW.provider, NEW.delivery_key, NEW.claim, NEW.event_call_id, NEW.call_provider,
    NEW.direction, NEW.from_number, NEW.to_number, NEW.status, NEW.status_rank, NEW.answered,
    NEW.started_at, NEW.ended_at, NEW.duration_seconds, NEW.event_received_at, NEW.at);
END;

-- ?16 call id, ?17 recording id, ?18 url, ?19 duration, ?20 status, ?21 event time.
CREATE VIEW recording_deliveries AS SELECT
  NULL AS provider, NULL AS delivery_key, NULL AS claim, NULL AS event_type, NULL AS user_id,
  NULL AS routed_number, NULL AS call_id, NULL AS has_events, NULL AS needs_owner,
  NULL AS kept, NULL AS received_at, NULL AS reported_start, NULL AS provider_ref,
  NULL AS call_digest, NULL AS reports_call,
  NULL AS event_call_id, NULL AS recording_id, NULL AS url, NULL AS duration_seconds,
  NULL AS status, NULL AS at
WHERE 0;

CREATE TRIGGER recording_deliveries_insert INSTEAD OF INSERT ON recording_deliveries
BEGIN
  INSERT INTO delivery_claims VALUES (NEW.provider, NEW.delivery_key, NEW.claim,
    NEW.event_type, NEW.user_id, NEW.routed_number, NEW.call_id, NEW.has_events,
    NEW.needs_owner, NEW.kept, NEW.received_at, NEW.reported_start, NEW.provider_ref,
    NEW.call_digest, NEW.reports_call);
  INSERT INTO recording_reports VALUES (
    NEW.provider, NEW.delivery_key, NEW.claim, NEW.event_call_id, NEW.recording_id, NEW.url,
    NEW.duration_seconds, NEW.status, NEW.at);
END;

-- ?16 call id, ?17 status, ?18 intent, ?19 confidence, ?20 summary, ?21 completed at,
-- ?22 event time.
CREATE VIEW analysis_deliveries AS SELECT
  NULL AS provider, NULL AS delivery_key, NULL AS claim, NULL AS event_type, NULL AS user_id,
  NULL AS routed_number, NULL AS call_id, NULL AS has_events, NULL AS needs_owner,
  NULL AS kept, NULL AS received_at, NULL AS reported_start, NULL AS provider_ref,
  NULL AS call_digest, NULL AS reports_call,
  NULL AS event_call_id, NULL AS status, NULL AS intent, NULL AS confidence,
  NULL AS summary, NULL AS completed_at, NULL AS at
WHERE 0;

CREATE TRIGGER analysis_deliveries_insert INSTEAD OF INSERT ON analysis_deliveries
BEGIN
  INSERT INTO delivery_claims VALUES (NEW.provider, NEW.delivery_key, NEW.claim,
    NEW.event_type, NEW.user_id, NEW.routed_number, NEW.call_id, NEW.has_events,
    NEW.needs_owner, NEW.kept, NEW.received_at, NEW.reported_start, NEW.provider_ref,
    NEW.call_digest, NEW.reports_call);
  INSERT INTO analysis_reports VALUES (
    NEW.provider, NEW.delivery_key, NEW.claim, NEW.event_call_id, NEW.status, NEW.intent,
    NEW.confidence, NEW.summary, NEW.completed_at, NEW.at);
END;

-- ?16 call id, ?17 phone, ?18 caller name, ?19 caller type, ?20 line type, ?21 carrier,
-- ?22 spam score, ?23 event time.
CREATE VIEW enrichment_deliveries AS SELECT
  NULL AS provider, NULL AS delivery_key, NULL AS claim, NULL AS event_type, NULL AS user_id,
  NULL AS routed_number, NULL AS call_id, NULL AS has_events, NULL AS needs_owner,
  NULL AS kept, NULL AS received_at, NULL AS reported_start, NULL AS provider_ref,
  NULL AS call_digest, NULL AS reports_call,
  NULL AS event_call_id, NULL AS phone_number, NULL AS caller_name, NULL AS caller_type,
  NULL AS line_type, NULL AS carrier, NULL AS spam_score, NULL AS at
WHERE 0;

CREATE TRIGGER enrichment_deliveries_insert INSTEAD OF INSERT ON enrichment_deliveries
BEGIN
  INSERT INTO delivery_claims VALUES (NEW.provider, NEW.delivery_key, NEW.claim,
    NEW.event_type, NEW.user_id, NEW.routed_number, NEW.call_id, NEW.has_events,
    NEW.needs_owner, NEW.kept, NEW.received_at, NEW.reported_start, NEW.provider_ref,
    NEW.call_digest, NEW.reports_call);
  INSERT INTO enrichment_reports VALUES (
    NEW.provider, NEW.delivery_key, NEW.claim, NEW.event_call_id, NEW.phone_number,
    NEW.caller_name, NEW.caller_type, NEW.line_type, NEW.carrier, NEW.spam_score, NEW.at);
END;

-- A delivery as its batch reads it back (`store::sql::delivery_outcome!`): what it did,
-- whose it is, the owner's version before its events and now, and whether that owner may
-- have the live feed open.
CREATE VIEW delivery_outcomes AS SELECT d.provider, d.delivery_key, d.claim, d.user_id,
  d.call_id, d.outcome, d.version_before,
  CASE WHEN d.user_id IS NOT NULL THEN
    (SELECT epoch FROM cache_epoch WHERE id = 1) * 1099511627776
      + COALESCE((SELECT version FROM user_versions WHERE user_id = d.user_id), 0) END
    AS version,
  EXISTS (SELECT 1 FROM live_listeners l WHERE l.user_id = d.user_id AND l.listening = 1)
    AS listening
FROM webhook_deliveries d;
