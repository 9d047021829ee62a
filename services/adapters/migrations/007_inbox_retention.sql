-- Inbox retention (services/service_layer/docs/idempotency.md): keys older than
-- ``inbox_retention_seconds`` are purged in batches by every relay, found through this index.
-- Building it locks the inbox against writes for as long as it takes (seconds per million
-- rows): run this migration before the consumers start, as ``admin setup`` does.
CREATE INDEX inbox_received_at ON inbox (received_at);
