-- tests/fault/sql/tx.sql - one counter transaction (pgbench script); :pad sets the log row size.
BEGIN;
UPDATE counter SET n = n + 1 WHERE id = 1;
INSERT INTO log SELECT nextval('log_id'), n, repeat('x', :pad) FROM counter WHERE id = 1;
COMMIT;
