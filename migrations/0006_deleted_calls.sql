-- Calls deleted by their owner (privacy requests). A webhook for a deleted call is ignored —
-- retries, late status callbacks, analyses, enrichments and recordings alike — unless it
-- reports a call that started after the deletion: a genuinely new call, which clears the mark.
CREATE TABLE deleted_calls (
  call_id    TEXT    PRIMARY KEY,
  user_id    TEXT    NOT NULL,
  deleted_at INTEGER NOT NULL
);
