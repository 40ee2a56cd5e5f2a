-- bench/sql/replica.sql - replica-only additions, run after schema.sql on each replica.
-- The apply time of each latency row: neither replicator sends this column, so the
-- replica's default fills it when the row is applied.
ALTER TABLE bench_lat ADD COLUMN applied timestamptz DEFAULT clock_timestamp();
