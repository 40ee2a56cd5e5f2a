-- bench/sql/latency.sql - pgbench script of the latency case: the row carries its source write time.
INSERT INTO bench_lat (written) VALUES (clock_timestamp());
