-- A feed of version changes, so an isolate re-vouches its whole view of users' versions with
-- one small query (the users changed since it last asked) instead of asking for each user.
--
-- `version_clock.seq` counts every change of any user's version, in commit order (D1 runs
-- writes one at a time, and the counter moves in the writing statement's own transaction).
-- `user_versions.changed_seq` is the count at that user's latest change. "Which users changed
-- after seq S?" is then an index range scan that reads one row per changed user.

CREATE TABLE version_clock (
  id  INTEGER PRIMARY KEY CHECK (id = 1),
  seq INTEGER NOT NULL
);
INSERT INTO version_clock (id, seq) VALUES (1, 0);

ALTER TABLE user_versions ADD COLUMN changed_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX user_versions_by_change ON user_versions (changed_seq);

-- The triggers update only `changed_seq`, which these do not watch: no recursion.
CREATE TRIGGER user_versions_feed_update AFTER UPDATE OF version ON user_versions
BEGIN
  UPDATE version_clock SET seq = seq + 1 WHERE id = 1;
  UPDATE user_versions SET changed_seq = (SELECT seq FROM version_clock WHERE id = 1)
    WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER user_versions_feed_insert AFTER INSERT ON user_versions
BEGIN
  UPDATE version_clock SET seq = seq + 1 WHERE id = 1;
  UPDATE user_versions SET changed_seq = (SELECT seq FROM version_clock WHERE id = 1)
    WHERE user_id = NEW.user_id;
END;
