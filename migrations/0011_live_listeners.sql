-- Who may have the live feed open, so that a webhook tells a user's feed object (a Durable
-- Object request) only when someone may be listening: most webhooks are for users with no
-- dashboard open, and a request per webhook would wake or create an object for each of them.
--
-- A feed object sets `listening` and moves `generation` in the batch that also reads the
-- version its `hello` carries, *before* it accepts the socket; a webhook's batch reads
-- `listening` after its writes. D1 runs one write at a time, so either the webhook's batch
-- came first (and the hello carries its version) or it sees `listening` (and is told).
-- Only an object that finds no socket clears the row, and only at the generation it last
-- opened a socket at: a socket opened meanwhile moved the generation, so that clear matches
-- nothing. A row left set after an object went away costs one request, which clears it.

CREATE TABLE live_listeners (
  user_id    TEXT    PRIMARY KEY,
  listening  INTEGER NOT NULL,
  generation INTEGER NOT NULL
) WITHOUT ROWID;
