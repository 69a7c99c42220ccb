-- Idempotent ingest: each attempt to apply a delivery inserts its row with a fresh random
-- claim (ON CONFLICT DO NOTHING), and every write of the same D1 batch runs only while the row
-- holds that claim. A retried delivery finds the first attempt's claim and changes nothing.
ALTER TABLE webhook_deliveries ADD COLUMN claim TEXT;
