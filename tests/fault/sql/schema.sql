-- tests/fault/sql/schema.sql - the tables of the fault scenarios' counter workload.
-- Every transaction adds 1 to the counter and logs the value it produced: a lost
-- transaction leaves a gap in log.n, a doubled one breaks counter = count(log) or the key.
CREATE TABLE counter (id int PRIMARY KEY, n bigint NOT NULL);
CREATE TABLE log (id bigint PRIMARY KEY, n bigint NOT NULL, pad text);
INSERT INTO counter VALUES (1, 0);
