-- Calls and what hangs off them. Instants are Unix epoch milliseconds (INTEGER).

CREATE TABLE calls (
  id               TEXT    PRIMARY KEY,
  user_id          TEXT    NOT NULL,
  provider         TEXT    NOT NULL CHECK (provider IN ('twilio', 'retell', 'api')),
  direction        TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound')),
  from_number      TEXT    NOT NULL,
  to_number        TEXT    NOT NULL,
  status           TEXT    NOT NULL,
  -- Progress order of `status`; an update may only raise it (see src/domain/mod.rs).
  status_rank      INTEGER NOT NULL DEFAULT 0,
  answered         INTEGER NOT NULL DEFAULT 0 CHECK (answered IN (0, 1)),
  started_at       INTEGER NOT NULL,
  ended_at         INTEGER,
  duration_seconds INTEGER,
  -- 1 while a completed analysis of the same user exists; kept by triggers in 0002.
  analyzed         INTEGER NOT NULL DEFAULT 0,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL
);

-- The dashboard's list: one user's calls, newest first, ties by id.
CREATE INDEX calls_by_user_newest ON calls (user_id, started_at DESC, id DESC);
-- The intent summary's list: only calls with a completed analysis.
CREATE INDEX calls_analyzed_by_user_newest ON calls (user_id, started_at DESC, id DESC)
  WHERE analyzed = 1;

-- One recording per call (the latest reported); attributed through its call.
CREATE TABLE recordings (
  call_id          TEXT    PRIMARY KEY,
  id               TEXT    NOT NULL,
  url              TEXT,
  duration_seconds INTEGER,
  status           TEXT    NOT NULL,
  updated_at       INTEGER NOT NULL
);

-- An analysis may arrive before its call; it is kept and joined when the call arrives.
CREATE TABLE analyses (
  call_id      TEXT    PRIMARY KEY,
  user_id      TEXT    NOT NULL,
  status       TEXT    NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
  intent       TEXT,
  confidence   REAL,
  summary      TEXT,
  completed_at INTEGER,
  updated_at   INTEGER NOT NULL
);

CREATE TABLE enrichments (
  call_id      TEXT    PRIMARY KEY,
  user_id      TEXT    NOT NULL,
  phone_number TEXT    NOT NULL,
  caller_name  TEXT,
  caller_type  TEXT,
  line_type    TEXT,
  carrier      TEXT,
  spam_score   REAL,
  updated_at   INTEGER NOT NULL
);

-- Which user a Twilio or Retell number belongs to (`To` for inbound, `From` for outbound).
CREATE TABLE phone_numbers (
  e164       TEXT    PRIMARY KEY,
  user_id    TEXT    NOT NULL,
  -- 1 when first routed, +1 on each re-route: tells the admin API created from updated.
  revision   INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX phone_numbers_by_user ON phone_numbers (user_id);

-- Every verified webhook delivery, keyed by what makes it unique for its provider, so a
-- retried delivery is recognised and changes nothing. Events that could not be attributed or
-- have an unknown type keep their payload here rather than being dropped.
CREATE TABLE webhook_deliveries (
  provider     TEXT    NOT NULL,
  delivery_key TEXT    NOT NULL,
  event_type   TEXT    NOT NULL,
  user_id      TEXT,
  call_id      TEXT,
  outcome      TEXT    NOT NULL,
  payload      TEXT,
  received_at  INTEGER NOT NULL,
  PRIMARY KEY (provider, delivery_key)
);
CREATE INDEX webhook_deliveries_by_call ON webhook_deliveries (call_id)
  WHERE call_id IS NOT NULL;
