-- Cache warming asks which users had webhook traffic recently; this keeps that a range scan.
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (received_at);
