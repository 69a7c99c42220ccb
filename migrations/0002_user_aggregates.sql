-- Per-user aggregates for the intent summary, so it reads O(intents) rows instead of every
-- call. Triggers keep them exact: they run inside the statement that changes a call or an
-- analysis, so the aggregates move in the same transaction (and D1 batch) as the row.
-- Rows are created with INSERT … WHERE NOT EXISTS rather than INSERT OR IGNORE: inside a
-- trigger an outer statement's conflict policy (an UPSERT's, say) overrides OR IGNORE.

CREATE TABLE user_stats (
  user_id            TEXT    PRIMARY KEY,
  total_calls        INTEGER NOT NULL DEFAULT 0,
  answered_calls     INTEGER NOT NULL DEFAULT 0,
  completed_analyses INTEGER NOT NULL DEFAULT 0,
  confidence_sum     REAL    NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE user_intents (
  user_id TEXT    NOT NULL,
  intent  TEXT    NOT NULL,
  calls   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, intent)
) WITHOUT ROWID;

-- Calls: count and answered count per user.

CREATE TRIGGER calls_aggregate_insert AFTER INSERT ON calls
BEGIN
  INSERT INTO user_stats (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_stats WHERE user_id = NEW.user_id);
  UPDATE user_stats
     SET total_calls = total_calls + 1, answered_calls = answered_calls + NEW.answered
   WHERE user_id = NEW.user_id;
  -- An analysis that arrived first is joined now.
  UPDATE calls SET analyzed = 1
   WHERE id = NEW.id
     AND EXISTS (SELECT 1 FROM analyses
                  WHERE call_id = NEW.id AND user_id = NEW.user_id AND status = 'completed');
END;

CREATE TRIGGER calls_aggregate_update AFTER UPDATE OF user_id, answered ON calls
BEGIN
  UPDATE user_stats
     SET total_calls = total_calls - 1, answered_calls = answered_calls - OLD.answered
   WHERE user_id = OLD.user_id;
  INSERT INTO user_stats (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_stats WHERE user_id = NEW.user_id);
  UPDATE user_stats
     SET total_calls = total_calls + 1, answered_calls = answered_calls + NEW.answered
   WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER calls_aggregate_delete AFTER DELETE ON calls
BEGIN
  UPDATE user_stats
     SET total_calls = total_calls - 1, answered_calls = answered_calls - OLD.answered
   WHERE user_id = OLD.user_id;
END;

-- Analyses: completed count, confidence sum and intent distribution per user, and the
-- `calls.analyzed` flag behind the summary's partial index.

CREATE TRIGGER analyses_aggregate_insert AFTER INSERT ON analyses
WHEN NEW.status = 'completed'
BEGIN
  INSERT INTO user_stats (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_stats WHERE user_id = NEW.user_id);
  UPDATE user_stats
     SET completed_analyses = completed_analyses + 1,
         confidence_sum = confidence_sum + COALESCE(NEW.confidence, 0)
   WHERE user_id = NEW.user_id;
  INSERT INTO user_intents (user_id, intent)
    SELECT NEW.user_id, COALESCE(NEW.intent, 'unknown') WHERE NOT EXISTS
      (SELECT 1 FROM user_intents WHERE user_id = NEW.user_id AND intent = COALESCE(NEW.intent, 'unknown'));
  UPDATE user_intents SET calls = calls + 1
   WHERE user_id = NEW.user_id AND intent = COALESCE(NEW.intent, 'unknown');
  UPDATE calls SET analyzed = 1 WHERE id = NEW.call_id AND user_id = NEW.user_id;
END;

CREATE TRIGGER analyses_aggregate_update_old AFTER UPDATE ON analyses
WHEN OLD.status = 'completed'
BEGIN
  UPDATE user_stats
     SET completed_analyses = completed_analyses - 1,
         confidence_sum = confidence_sum - COALESCE(OLD.confidence, 0)
   WHERE user_id = OLD.user_id;
  UPDATE user_intents SET calls = calls - 1
   WHERE user_id = OLD.user_id AND intent = COALESCE(OLD.intent, 'unknown');
  DELETE FROM user_intents
   WHERE user_id = OLD.user_id AND intent = COALESCE(OLD.intent, 'unknown') AND calls <= 0;
END;

CREATE TRIGGER analyses_aggregate_update_new AFTER UPDATE ON analyses
WHEN NEW.status = 'completed'
BEGIN
  INSERT INTO user_stats (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_stats WHERE user_id = NEW.user_id);
  UPDATE user_stats
     SET completed_analyses = completed_analyses + 1,
         confidence_sum = confidence_sum + COALESCE(NEW.confidence, 0)
   WHERE user_id = NEW.user_id;
  INSERT INTO user_intents (user_id, intent)
    SELECT NEW.user_id, COALESCE(NEW.intent, 'unknown') WHERE NOT EXISTS
      (SELECT 1 FROM user_intents WHERE user_id = NEW.user_id AND intent = COALESCE(NEW.intent, 'unknown'));
  UPDATE user_intents SET calls = calls + 1
   WHERE user_id = NEW.user_id AND intent = COALESCE(NEW.intent, 'unknown');
END;

-- The flag is set from the new row alone, so the firing order of the update triggers (which
-- SQLite does not promise) cannot matter.
CREATE TRIGGER analyses_flag_update AFTER UPDATE ON analyses
BEGIN
  UPDATE calls SET analyzed = (NEW.status = 'completed')
   WHERE id = NEW.call_id AND user_id = NEW.user_id;
END;

CREATE TRIGGER analyses_aggregate_delete AFTER DELETE ON analyses
BEGIN
  UPDATE user_stats
     SET completed_analyses = completed_analyses - (OLD.status = 'completed'),
         confidence_sum = confidence_sum
           - CASE WHEN OLD.status = 'completed' THEN COALESCE(OLD.confidence, 0) ELSE 0 END
   WHERE user_id = OLD.user_id;
  UPDATE user_intents SET calls = calls - 1
   WHERE OLD.status = 'completed'
     AND user_id = OLD.user_id AND intent = COALESCE(OLD.intent, 'unknown');
  DELETE FROM user_intents
   WHERE user_id = OLD.user_id AND intent = COALESCE(OLD.intent, 'unknown') AND calls <= 0;
  UPDATE calls SET analyzed = 0 WHERE id = OLD.call_id AND user_id = OLD.user_id;
END;
