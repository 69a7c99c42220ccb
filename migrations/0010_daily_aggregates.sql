-- Per-(user, UTC day) aggregates for ranged summaries and daily series, so a range reads one
-- row per day whatever the number of calls (or of intents). A call counts on the UTC day it
-- started; its analysis counts there too when it is completed and the user's (the copy in the
-- call row, `migrations/0005`). So these move only with the call row: its insert, its deletion,
-- and an update of its owner, start, answered flag or analysis copy — a re-analysis, a late
-- `startedAt`, a status change that answers it. Triggers keep them in the same statement, hence
-- the same D1 batch, as that change.
--
-- A day is floor(started_at / 86 400 000) (SQLite's `/` truncates, so the remainder is taken
-- off first for instants before 1970). Confidence is summed in millionths, as an integer, so a
-- long history of additions and subtractions comes back to exactly zero. `intents` is the
-- day's intent distribution as a JSON object keyed by the hex of each intent's UTF-8 (`hex()`:
-- a key of [0-9A-F] is always a plain JSON path, whatever the pipelines call an intent), counts
-- above zero only. A row at zero calls is deleted: a day nobody called holds no row, and reads
-- fill it with zeros.

CREATE TABLE user_days (
  user_id            TEXT    NOT NULL,
  day                INTEGER NOT NULL,
  total_calls        INTEGER NOT NULL DEFAULT 0,
  answered_calls     INTEGER NOT NULL DEFAULT 0,
  completed_analyses INTEGER NOT NULL DEFAULT 0,
  confidence_micros  INTEGER NOT NULL DEFAULT 0,
  intents            TEXT    NOT NULL DEFAULT '{}',
  PRIMARY KEY (user_id, day)
) WITHOUT ROWID;

INSERT INTO user_days (user_id, day, total_calls, answered_calls, completed_analyses,
                       confidence_micros)
  SELECT user_id, (started_at - ((started_at % 86400000) + 86400000) % 86400000) / 86400000,
         COUNT(*), SUM(answered), SUM(an_status IS 'completed'),
         SUM(CASE WHEN an_status IS 'completed'
                  THEN CAST(round(COALESCE(an_confidence, 0) * 1000000) AS INTEGER) ELSE 0 END)
    FROM calls GROUP BY 1, 2;

UPDATE user_days SET intents = (
  SELECT json_group_object(i.key, i.n) FROM (
    SELECT hex(COALESCE(c.an_intent, 'unknown')) AS key, COUNT(*) AS n FROM calls c
     WHERE c.user_id = user_days.user_id AND c.an_status IS 'completed'
       AND (c.started_at - ((c.started_at % 86400000) + 86400000) % 86400000) / 86400000
           = user_days.day
     GROUP BY 1) i)
 WHERE completed_analyses > 0;

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

-- The old row's share leaves its day, then the new row's joins its own (the same day or
-- another): correct whatever changed, and whatever order SQLite fires triggers in.
CREATE TRIGGER calls_days_update
AFTER UPDATE OF user_id, started_at, answered, an_status, an_intent, an_confidence ON calls
WHEN OLD.user_id IS NOT NEW.user_id OR OLD.started_at IS NOT NEW.started_at
  OR OLD.answered IS NOT NEW.answered OR OLD.an_status IS NOT NEW.an_status
  OR OLD.an_intent IS NOT NEW.an_intent OR OLD.an_confidence IS NOT NEW.an_confidence
BEGIN
  UPDATE user_days
     SET total_calls = total_calls - 1, answered_calls = answered_calls - OLD.answered,
         completed_analyses = completed_analyses - (OLD.an_status IS 'completed'),
         confidence_micros = confidence_micros - CASE WHEN OLD.an_status IS 'completed'
           THEN CAST(round(COALESCE(OLD.an_confidence, 0) * 1000000) AS INTEGER) ELSE 0 END,
         intents = CASE
           WHEN OLD.an_status IS NOT 'completed' THEN intents
           WHEN COALESCE(json_extract(intents, '$."' || hex(COALESCE(OLD.an_intent, 'unknown')) || '"'), 0) <= 1
             THEN json_remove(intents, '$."' || hex(COALESCE(OLD.an_intent, 'unknown')) || '"')
           ELSE json_set(intents, '$."' || hex(COALESCE(OLD.an_intent, 'unknown')) || '"',
                         json_extract(intents, '$."' || hex(COALESCE(OLD.an_intent, 'unknown')) || '"') - 1) END
   WHERE user_id = OLD.user_id
     AND day = (OLD.started_at - ((OLD.started_at % 86400000) + 86400000) % 86400000) / 86400000;
  DELETE FROM user_days WHERE user_id = OLD.user_id AND total_calls <= 0
     AND day = (OLD.started_at - ((OLD.started_at % 86400000) + 86400000) % 86400000) / 86400000;
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

CREATE TRIGGER calls_days_delete AFTER DELETE ON calls
BEGIN
  UPDATE user_days
     SET total_calls = total_calls - 1, answered_calls = answered_calls - OLD.answered,
         completed_analyses = completed_analyses - (OLD.an_status IS 'completed'),
         confidence_micros = confidence_micros - CASE WHEN OLD.an_status IS 'completed'
           THEN CAST(round(COALESCE(OLD.an_confidence, 0) * 1000000) AS INTEGER) ELSE 0 END,
         intents = CASE
           WHEN OLD.an_status IS NOT 'completed' THEN intents
           WHEN COALESCE(json_extract(intents, '$."' || hex(COALESCE(OLD.an_intent, 'unknown')) || '"'), 0) <= 1
             THEN json_remove(intents, '$."' || hex(COALESCE(OLD.an_intent, 'unknown')) || '"')
           ELSE json_set(intents, '$."' || hex(COALESCE(OLD.an_intent, 'unknown')) || '"',
                         json_extract(intents, '$."' || hex(COALESCE(OLD.an_intent, 'unknown')) || '"') - 1) END
   WHERE user_id = OLD.user_id
     AND day = (OLD.started_at - ((OLD.started_at % 86400000) + 86400000) % 86400000) / 86400000;
  DELETE FROM user_days WHERE user_id = OLD.user_id AND total_calls <= 0
     AND day = (OLD.started_at - ((OLD.started_at % 86400000) + 86400000) % 86400000) / 86400000;
END;

-- Filtered pages (`store::sql`, "Filters"): each filter is one index range scan in
-- `started_at desc, id desc` order. One status: this index. An intent: the next (the analysis
-- copy in the call row; a completed analysis without an intent counts as `unknown`, as the
-- summary's distribution says). Anything else (several statuses, a direction) filters the
-- user's newest-first index as it reads, within a bounded scan.
CREATE INDEX calls_by_user_status_newest ON calls (user_id, status, started_at DESC, id DESC);
CREATE INDEX calls_by_user_intent_newest
  ON calls (user_id, COALESCE(an_intent, 'unknown'), started_at DESC, id DESC)
  WHERE analyzed = 1;
