-- bench/sql/small.sql - pgbench script of the small case: one single-row INSERT transaction.
INSERT INTO bench_small (v) VALUES (md5(random()::text));
