-- A log of version changes, so an isolate re-vouches its whole view of users' versions with
-- one small query (the changes since it last asked) instead of asking for each user, and
-- learns *which call* each change was about, so entries for a user's other calls stay valid.
--
-- `version_clock.seq` counts every change of any user's version, in commit order (D1 runs
-- writes one at a time, and the counter moves in the writing statement's own transaction).
-- Each change appends one `change_log` row: its position, the user, the call it was about
-- (NULL: any of the user's data, e.g. an operator purge) and the user's version after it.
-- "Which changes came after position S?" is a primary-key range scan, one row per change.
-- The log keeps the last 100,000 changes; an isolate further behind starts over.

CREATE TABLE version_clock (
  id  INTEGER PRIMARY KEY CHECK (id = 1),
  seq INTEGER NOT NULL
);
INSERT INTO version_clock (id, seq) VALUES (1, 0);

CREATE TABLE change_log (
  seq     INTEGER PRIMARY KEY,
  user_id TEXT    NOT NULL,
  call_id TEXT,
  version INTEGER NOT NULL
);
-- Deleting a call blanks its id here (privacy: no stored byte names a deleted call).
CREATE INDEX change_log_by_call ON change_log (call_id);

-- The call the statement now moving a version is about; set by the data triggers just
-- around their version update, NULL otherwise.
CREATE TABLE change_context (
  id      INTEGER PRIMARY KEY CHECK (id = 1),
  call_id TEXT
);
INSERT INTO change_context (id, call_id) VALUES (1, NULL);

CREATE TRIGGER user_versions_log_update AFTER UPDATE OF version ON user_versions
BEGIN
  UPDATE version_clock SET seq = seq + 1 WHERE id = 1;
  INSERT INTO change_log (seq, user_id, call_id, version) VALUES (
    (SELECT seq FROM version_clock WHERE id = 1), NEW.user_id,
    (SELECT call_id FROM change_context WHERE id = 1), NEW.version);
  DELETE FROM change_log WHERE seq <= (SELECT seq FROM version_clock WHERE id = 1) - 100000;
END;

CREATE TRIGGER user_versions_log_insert AFTER INSERT ON user_versions
BEGIN
  UPDATE version_clock SET seq = seq + 1 WHERE id = 1;
  INSERT INTO change_log (seq, user_id, call_id, version) VALUES (
    (SELECT seq FROM version_clock WHERE id = 1), NEW.user_id,
    (SELECT call_id FROM change_context WHERE id = 1), NEW.version);
  DELETE FROM change_log WHERE seq <= (SELECT seq FROM version_clock WHERE id = 1) - 100000;
END;

-- The version triggers of 0008, again, now naming their call in `change_context`.

DROP TRIGGER calls_version_insert;
CREATE TRIGGER calls_version_insert AFTER INSERT ON calls
BEGIN
  UPDATE change_context SET call_id = NEW.id WHERE id = 1;
  INSERT INTO user_versions (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_versions WHERE user_id = NEW.user_id);
  UPDATE user_versions SET version = version + 1 WHERE user_id = NEW.user_id;
  UPDATE change_context SET call_id = NULL WHERE id = 1;
END;

DROP TRIGGER calls_version_update;
CREATE TRIGGER calls_version_update AFTER UPDATE ON calls
BEGIN
  UPDATE change_context SET call_id = NEW.id WHERE id = 1;
  INSERT INTO user_versions (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_versions WHERE user_id = NEW.user_id);
  UPDATE user_versions SET version = version + 1 WHERE user_id IN (OLD.user_id, NEW.user_id);
  UPDATE change_context SET call_id = NULL WHERE id = 1;
END;

DROP TRIGGER calls_version_delete;
CREATE TRIGGER calls_version_delete AFTER DELETE ON calls
BEGIN
  UPDATE change_context SET call_id = OLD.id WHERE id = 1;
  UPDATE user_versions SET version = version + 1 WHERE user_id = OLD.user_id;
  UPDATE change_context SET call_id = NULL WHERE id = 1;
END;

DROP TRIGGER analyses_version_insert;
CREATE TRIGGER analyses_version_insert AFTER INSERT ON analyses
BEGIN
  UPDATE change_context SET call_id = NEW.call_id WHERE id = 1;
  INSERT INTO user_versions (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_versions WHERE user_id = NEW.user_id);
  UPDATE user_versions SET version = version + 1 WHERE user_id = NEW.user_id;
  UPDATE change_context SET call_id = NULL WHERE id = 1;
END;

DROP TRIGGER analyses_version_update;
CREATE TRIGGER analyses_version_update AFTER UPDATE ON analyses
BEGIN
  UPDATE change_context SET call_id = NEW.call_id WHERE id = 1;
  INSERT INTO user_versions (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_versions WHERE user_id = NEW.user_id);
  UPDATE user_versions SET version = version + 1 WHERE user_id IN (OLD.user_id, NEW.user_id);
  UPDATE change_context SET call_id = NULL WHERE id = 1;
END;

DROP TRIGGER analyses_version_delete;
CREATE TRIGGER analyses_version_delete AFTER DELETE ON analyses
BEGIN
  UPDATE change_context SET call_id = OLD.call_id WHERE id = 1;
  UPDATE user_versions SET version = version + 1 WHERE user_id = OLD.user_id;
  UPDATE change_context SET call_id = NULL WHERE id = 1;
END;

DROP TRIGGER enrichments_version_insert;
CREATE TRIGGER enrichments_version_insert AFTER INSERT ON enrichments
BEGIN
  UPDATE change_context SET call_id = NEW.call_id WHERE id = 1;
  INSERT INTO user_versions (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_versions WHERE user_id = NEW.user_id);
  UPDATE user_versions SET version = version + 1 WHERE user_id = NEW.user_id;
  UPDATE change_context SET call_id = NULL WHERE id = 1;
END;

DROP TRIGGER enrichments_version_update;
CREATE TRIGGER enrichments_version_update AFTER UPDATE ON enrichments
BEGIN
  UPDATE change_context SET call_id = NEW.call_id WHERE id = 1;
  INSERT INTO user_versions (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_versions WHERE user_id = NEW.user_id);
  UPDATE user_versions SET version = version + 1 WHERE user_id IN (OLD.user_id, NEW.user_id);
  UPDATE change_context SET call_id = NULL WHERE id = 1;
END;

DROP TRIGGER enrichments_version_delete;
CREATE TRIGGER enrichments_version_delete AFTER DELETE ON enrichments
BEGIN
  UPDATE change_context SET call_id = OLD.call_id WHERE id = 1;
  UPDATE user_versions SET version = version + 1 WHERE user_id = OLD.user_id;
  UPDATE change_context SET call_id = NULL WHERE id = 1;
END;
