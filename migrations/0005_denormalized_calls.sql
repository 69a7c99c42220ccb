-- Each call row carries a copy of its recording, analysis and enrichment, kept by triggers,
-- so a page of calls reads `limit` rows of one table (D1 bills rows read; the joins cost three
-- extra lookups per call). The side tables stay the source: they hold what arrives before its
-- call, and the copy is pulled in when the call lands.

ALTER TABLE calls ADD COLUMN rec_id TEXT;
ALTER TABLE calls ADD COLUMN rec_url TEXT;
ALTER TABLE calls ADD COLUMN rec_duration INTEGER;
ALTER TABLE calls ADD COLUMN rec_status TEXT;
ALTER TABLE calls ADD COLUMN an_status TEXT;
ALTER TABLE calls ADD COLUMN an_intent TEXT;
ALTER TABLE calls ADD COLUMN an_confidence REAL;
ALTER TABLE calls ADD COLUMN an_summary TEXT;
ALTER TABLE calls ADD COLUMN an_completed_at INTEGER;
ALTER TABLE calls ADD COLUMN en_phone TEXT;
ALTER TABLE calls ADD COLUMN en_caller_name TEXT;
ALTER TABLE calls ADD COLUMN en_caller_type TEXT;
ALTER TABLE calls ADD COLUMN en_line_type TEXT;
ALTER TABLE calls ADD COLUMN en_carrier TEXT;
ALTER TABLE calls ADD COLUMN en_spam_score REAL;
ALTER TABLE calls ADD COLUMN en_updated_at INTEGER;

-- A new call pulls in whatever arrived before it (same owner only for analyses and
-- enrichments, as the joins did).
CREATE TRIGGER calls_copy_on_insert AFTER INSERT ON calls
BEGIN
  UPDATE calls SET (rec_id, rec_url, rec_duration, rec_status) =
      (SELECT id, url, duration_seconds, status FROM recordings WHERE call_id = NEW.id),
    (an_status, an_intent, an_confidence, an_summary, an_completed_at) =
      (SELECT status, intent, confidence, summary, completed_at FROM analyses
        WHERE call_id = NEW.id AND user_id = NEW.user_id),
    (en_phone, en_caller_name, en_caller_type, en_line_type, en_carrier, en_spam_score,
     en_updated_at) =
      (SELECT phone_number, caller_name, caller_type, line_type, carrier, spam_score, updated_at
         FROM enrichments WHERE call_id = NEW.id AND user_id = NEW.user_id)
   WHERE id = NEW.id;
END;

CREATE TRIGGER recordings_copy_insert AFTER INSERT ON recordings
BEGIN
  UPDATE calls SET rec_id = NEW.id, rec_url = NEW.url, rec_duration = NEW.duration_seconds,
    rec_status = NEW.status WHERE id = NEW.call_id;
END;

CREATE TRIGGER recordings_copy_update AFTER UPDATE ON recordings
BEGIN
  UPDATE calls SET rec_id = NEW.id, rec_url = NEW.url, rec_duration = NEW.duration_seconds,
    rec_status = NEW.status WHERE id = NEW.call_id;
END;

CREATE TRIGGER recordings_copy_delete AFTER DELETE ON recordings
BEGIN
  UPDATE calls SET rec_id = NULL, rec_url = NULL, rec_duration = NULL, rec_status = NULL
   WHERE id = OLD.call_id;
END;

CREATE TRIGGER analyses_copy_insert AFTER INSERT ON analyses
BEGIN
  UPDATE calls SET an_status = NEW.status, an_intent = NEW.intent,
    an_confidence = NEW.confidence, an_summary = NEW.summary,
    an_completed_at = NEW.completed_at
   WHERE id = NEW.call_id AND user_id = NEW.user_id;
END;

CREATE TRIGGER analyses_copy_update AFTER UPDATE ON analyses
BEGIN
  UPDATE calls SET an_status = NEW.status, an_intent = NEW.intent,
    an_confidence = NEW.confidence, an_summary = NEW.summary,
    an_completed_at = NEW.completed_at
   WHERE id = NEW.call_id AND user_id = NEW.user_id;
END;

CREATE TRIGGER analyses_copy_delete AFTER DELETE ON analyses
BEGIN
  UPDATE calls SET an_status = NULL, an_intent = NULL, an_confidence = NULL,
    an_summary = NULL, an_completed_at = NULL
   WHERE id = OLD.call_id AND user_id = OLD.user_id;
END;

CREATE TRIGGER enrichments_copy_insert AFTER INSERT ON enrichments
BEGIN
  UPDATE calls SET en_phone = NEW.phone_number, en_caller_name = NEW.caller_name,
    en_caller_type = NEW.caller_type, en_line_type = NEW.line_type, en_carrier = NEW.carrier,
    en_spam_score = NEW.spam_score, en_updated_at = NEW.updated_at
   WHERE id = NEW.call_id AND user_id = NEW.user_id;
END;

CREATE TRIGGER enrichments_copy_update AFTER UPDATE ON enrichments
BEGIN
  UPDATE calls SET en_phone = NEW.phone_number, en_caller_name = NEW.caller_name,
    en_caller_type = NEW.caller_type, en_line_type = NEW.line_type, en_carrier = NEW.carrier,
    en_spam_score = NEW.spam_score, en_updated_at = NEW.updated_at
   WHERE id = NEW.call_id AND user_id = NEW.user_id;
END;

CREATE TRIGGER enrichments_copy_delete AFTER DELETE ON enrichments
BEGIN
  UPDATE calls SET en_phone = NULL, en_caller_name = NULL, en_caller_type = NULL,
    en_line_type = NULL, en_carrier = NULL, en_spam_score = NULL, en_updated_at = NULL
   WHERE id = OLD.call_id AND user_id = OLD.user_id;
END;

-- Existing calls get their copies now.
UPDATE calls SET (rec_id, rec_url, rec_duration, rec_status) =
    (SELECT id, url, duration_seconds, status FROM recordings WHERE call_id = calls.id),
  (an_status, an_intent, an_confidence, an_summary, an_completed_at) =
    (SELECT status, intent, confidence, summary, completed_at FROM analyses
      WHERE call_id = calls.id AND user_id = calls.user_id),
  (en_phone, en_caller_name, en_caller_type, en_line_type, en_carrier, en_spam_score,
   en_updated_at) =
    (SELECT phone_number, caller_name, caller_type, line_type, carrier, spam_score, updated_at
       FROM enrichments WHERE call_id = calls.id AND user_id = calls.user_id);
