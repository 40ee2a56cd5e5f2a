-- tests/fault/sql/check.sql - the counter workload's invariant: n|count|distinct|max.
SELECT (SELECT n FROM counter WHERE id = 1), (SELECT count(*) FROM log),
       (SELECT count(DISTINCT n) FROM log), (SELECT coalesce(max(n), 0) FROM log);
