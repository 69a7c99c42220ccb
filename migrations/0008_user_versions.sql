-- One version per user, moved forward by every change to that user's data, in the statement
-- (hence the D1 batch and transaction) that makes the change. It is the cache's one version
-- authority: a load reads data and version in one batch, so an entry stored under a version
-- can never claim to be newer than its data, and an isolate learns that its entries are
-- retired by reading this row, not KV (which is last-writer-wins and eventually consistent).
-- Values are opaque to clients and only ever grow; a change may move them by more than one.

CREATE TABLE user_versions (
  user_id TEXT    PRIMARY KEY,
  version INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- The operator's "purge everything": one epoch for all users. The version a client sees is
-- epoch * 2^40 + the user's version, so a purge moves every user's version forward at once
-- with one write.
CREATE TABLE cache_epoch (
  id    INTEGER PRIMARY KEY CHECK (id = 1),
  epoch INTEGER NOT NULL
);
INSERT INTO cache_epoch (id, epoch) VALUES (1, 0);

-- Users who already have data start at 1 (0 means "never written").
INSERT INTO user_versions (user_id, version)
  SELECT user_id, 1 FROM calls GROUP BY user_id
  UNION SELECT user_id, 1 FROM analyses GROUP BY user_id
  UNION SELECT user_id, 1 FROM enrichments GROUP BY user_id;

CREATE TRIGGER calls_version_insert AFTER INSERT ON calls
BEGIN
  INSERT INTO user_versions (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_versions WHERE user_id = NEW.user_id);
  UPDATE user_versions SET version = version + 1 WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER calls_version_update AFTER UPDATE ON calls
BEGIN
  INSERT INTO user_versions (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_versions WHERE user_id = NEW.user_id);
  UPDATE user_versions SET version = version + 1 WHERE user_id IN (OLD.user_id, NEW.user_id);
END;

CREATE TRIGGER calls_version_delete AFTER DELETE ON calls
BEGIN
  UPDATE user_versions SET version = version + 1 WHERE user_id = OLD.user_id;
END;

CREATE TRIGGER analyses_version_insert AFTER INSERT ON analyses
BEGIN
  INSERT INTO user_versions (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_versions WHERE user_id = NEW.user_id);
  UPDATE user_versions SET version = version + 1 WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER analyses_version_update AFTER UPDATE ON analyses
BEGIN
  INSERT INTO user_versions (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_versions WHERE user_id = NEW.user_id);
  UPDATE user_versions SET version = version + 1 WHERE user_id IN (OLD.user_id, NEW.user_id);
END;

CREATE TRIGGER analyses_version_delete AFTER DELETE ON analyses
BEGIN
  UPDATE user_versions SET version = version + 1 WHERE user_id = OLD.user_id;
END;

CREATE TRIGGER enrichments_version_insert AFTER INSERT ON enrichments
BEGIN
  INSERT INTO user_versions (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_versions WHERE user_id = NEW.user_id);
  UPDATE user_versions SET version = version + 1 WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER enrichments_version_update AFTER UPDATE ON enrichments
BEGIN
  INSERT INTO user_versions (user_id)
    SELECT NEW.user_id WHERE NOT EXISTS (SELECT 1 FROM user_versions WHERE user_id = NEW.user_id);
  UPDATE user_versions SET version = version + 1 WHERE user_id IN (OLD.user_id, NEW.user_id);
END;

CREATE TRIGGER enrichments_version_delete AFTER DELETE ON enrichments
BEGIN
  UPDATE user_versions SET version = version + 1 WHERE user_id = OLD.user_id;
END;

-- Recordings are attributed through their call: the copy triggers of 0005 update the call row,
-- which moves its owner's version above. A recording that arrives before its call belongs to
-- no one yet, and is pulled in (moving the version) when the call lands.
