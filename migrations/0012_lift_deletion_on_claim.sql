-- A deletion mark is lifted by the delivery's claim itself, not by a statement of its own.
--
-- A delivery that reports a call starting after the call's deletion is a new call with the
-- same id, and clears the mark (`0006_deleted_calls.sql`). That took one more statement in
-- every call report's batch, which in most batches deleted nothing. The claim already looks
-- the mark up; when it applies a call report for an id that has one, it writes the mark's
-- digest into `lift_mark`, and this trigger deletes the mark (as a digest, or the raw id a
-- mark made before `0007` holds) and blanks the column at once, so no delivery row keeps a
-- digest of a call id. Deleting a mark moves no version (no trigger runs on `deleted_calls`),
-- so the version the claim returns is still the one before the delivery's events.

ALTER TABLE webhook_deliveries ADD COLUMN lift_mark TEXT;

CREATE TRIGGER webhook_deliveries_lift_deletion AFTER INSERT ON webhook_deliveries
WHEN NEW.lift_mark IS NOT NULL
BEGIN
  DELETE FROM deleted_calls WHERE call_id IN (NEW.call_id, NEW.lift_mark);
  UPDATE webhook_deliveries SET lift_mark = NULL
   WHERE provider = NEW.provider AND delivery_key = NEW.delivery_key;
END;
