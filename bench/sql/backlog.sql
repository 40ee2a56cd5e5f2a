-- bench/sql/backlog.sql - pgbench script of the backlog case: one single-row INSERT transaction.
INSERT INTO bench_backlog (v) VALUES (md5(random()::text));
