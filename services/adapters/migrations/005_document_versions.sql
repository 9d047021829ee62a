-- Stored JSON documents carry the version of their shape (services/adapters/documents.py):
-- rows written before this migration are version 1; readers upgrade old versions on read.
ALTER TABLE transactions ADD COLUMN IF NOT EXISTS doc_version integer NOT NULL DEFAULT 1;
ALTER TABLE coupons ADD COLUMN IF NOT EXISTS doc_version integer NOT NULL DEFAULT 1;
ALTER TABLE catalog ADD COLUMN IF NOT EXISTS doc_version integer NOT NULL DEFAULT 1;
ALTER TABLE parked_events ADD COLUMN IF NOT EXISTS body_version integer NOT NULL DEFAULT 1;
