-- A new call copies in what arrived before it only when something did.
--
-- `calls_copy_on_insert` (0005) updated every new call's row, though most calls arrive before
-- their recording, analysis and enrichment and so copied nothing: an update that rewrote the
-- row, fired `calls_version_update` (a second version step and a second `change_log` entry for
-- the same insert) and the daily aggregates' check. Guarded by the same lookups its update
-- makes, it now runs only for a call something arrived before; what it copies is unchanged.
-- A new call's batch writes about a tenth less in SQLite, and the version feed keeps twice the
-- history for the same 100,000 entries.
--
-- SQLite fires a table's triggers newest first, and their order matters here: the daily
-- aggregates must count the new row before the copy's update moves its analysis into its day
-- (`calls_days_update` takes the old row's share out of its day first). Recreating one trigger
-- makes it the newest, so the two created after it (0009's version step, 0010's daily count)
-- are recreated after it, unchanged, keeping the order: days, version, copy, aggregates.

DROP TRIGGER calls_days_insert;
DROP TRIGGER calls_version_insert;
DROP TRIGGER calls_copy_on_insert;

CREATE TRIGGER calls_copy_on_insert AFTER INSERT ON calls
WHEN EXISTS (SELECT 1 FROM recordings WHERE call_id = NEW.id)
  OR EXISTS (SELECT 1 FROM analyses WHERE call_id = NEW.id AND user_id = NEW.user_id)
  OR EXISTS (SELECT 1 FROM enrichments WHERE call_id = NEW.id AND user_id = NEW.user_id)
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

CREATE TRIGGER calls_version_insert AFTER INSERT ON calls
BEGIN
  UPDATE change_context SET call_id = NEW.id WHERE id = 1;
  INSERT INTO user_versions (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_versions WHERE user_id = NEW.user_id);
  UPDATE user_versions SET version = version + 1 WHERE user_id = NEW.user_id;
  UPDATE change_context SET call_id = NULL WHERE id = 1;
END;

CREATE TRIGGER calls_days_insert AFTER INSERT ON calls
BEGIN
  INSERT INTO user_days (user_id, day)
    SELECT NEW.user_id, (NEW.started_at - ((NEW.started_at % 86400000) + 86400000) % 86400000) / 86400000
     WHERE NOT EXISTS (SELECT 1 FROM user_days WHERE user_id = NEW.user_id
       AND day = (NEW.started_at - ((NEW.started_at % 86400000) + 86400000) % 86400000) / 86400000);
  UPDATE user_days
     SET total_calls = total_calls + 1, answered_calls = answered_calls + NEW.answered,
         completed_analyses = completed_analyses + (NEW.an_status IS 'completed'),
         confidence_micros = confidence_micros + CASE WHEN NEW.an_status IS 'completed'
           THEN CAST(round(COALESCE(NEW.an_confidence, 0) * 1000000) AS INTEGER) ELSE 0 END,
         intents = CASE WHEN NEW.an_status IS 'completed'
           THEN json_set(intents, '$."' || hex(COALESCE(NEW.an_intent, 'unknown')) || '"',
                         COALESCE(json_extract(intents, '$."' || hex(COALESCE(NEW.an_intent, 'unknown')) || '"'), 0) + 1)
           ELSE intents END
   WHERE user_id = NEW.user_id
     AND day = (NEW.started_at - ((NEW.started_at % 86400000) + 86400000) % 86400000) / 86400000;
END;
