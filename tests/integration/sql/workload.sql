-- tests/integration/sql/workload.sql - every change type rt must replicate.
INSERT INTO kv SELECT g, 'v' || g, g * 1.5 FROM generate_series(1, 2000) g;
UPDATE kv SET v = v || '-u' WHERE id % 3 = 0;
UPDATE kv SET id = id + 100000 WHERE id % 10 = 1;       -- primary key changes
DELETE FROM kv WHERE id % 7 = 0;
UPDATE kv SET v = NULL, n = NULL WHERE id % 11 = 0;
INSERT INTO kv VALUES (500000, '', 0), (500001, E'tab\there\nnewline \\ back', -1.25);

BEGIN;
INSERT INTO alltypes VALUES
  (1, 1, 2, 3, 12345.678901, 'text ''quoted''', '\x00ff10', true, '{"a": [1, 2, {"b": null}]}',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29 12:34:56.789+02', '2024-02-29',
   '{1,2,NULL,4}', '{"a b","c,d",NULL,"e\"f"}', 'happy', 7, '{"x": 1}', 1.5e300),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (3, -32768, -2147483648, -9223372036854775808, -0.000001, 'ünïcødé ✓', '\x', false, '[]',
   '00000000-0000-0000-0000-000000000000', 'infinity', '0001-01-01', '{}', '{}', 'sad', 1, 'null', 'NaN');
UPDATE alltypes SET c_mood = 'ok', c_jsonb = c_jsonb || '{"z": true}' WHERE id = 1;
COMMIT;

INSERT INTO docs SELECT g, (SELECT string_agg(md5(i::text || g::text), '') FROM generate_series(1, 3200) i), 0
  FROM generate_series(1, 5) g;                       -- ~100 kB bodies, stored out of line
UPDATE docs SET counter = counter + 1;                -- body unchanged: sent as 'u'
UPDATE docs SET counter = counter + 1 WHERE id = 2;
UPDATE docs SET body = 'short now' WHERE id = 3;

INSERT INTO nopk VALUES (1, 'a', '{"k":1}'), (1, 'a', '{"k":1}'), (1, 'a', '{"k":1}'), (2, NULL, NULL), (2, NULL, NULL);
UPDATE nopk SET b = 'changed' WHERE ctid = (SELECT ctid FROM nopk WHERE a = 1 LIMIT 1);
DELETE FROM nopk WHERE ctid = (SELECT ctid FROM nopk WHERE a = 2 LIMIT 1);
UPDATE nopk SET a = 3 WHERE a = 2;

INSERT INTO byindex VALUES (1, 'x', 'c1'), (2, 'y', 'c2'), (3, 'z', NULL);
UPDATE byindex SET c = 'c2-u' WHERE a = 2;
UPDATE byindex SET b = 'x2' WHERE a = 1;              -- identity columns change
DELETE FROM byindex WHERE a = 3;

INSERT INTO "Mixed Case"."we;ird name" SELECT g, 'q' || g, g FROM generate_series(1, 50) g;
UPDATE "Mixed Case"."we;ird name" SET "Col ""q""" = 'changed' WHERE "Key Col" < 10;
UPDATE "Mixed Case"."we;ird name" SET "Key Col" = "Key Col" + 1000 WHERE "Key Col" > 45;
DELETE FROM "Mixed Case"."we;ird name" WHERE "Key Col" = 20;

INSERT INTO parent (name) SELECT 'p' || g FROM generate_series(1, 10) g;
INSERT INTO child (parent_id, v) SELECT (g % 10) + 1, 'c' || g FROM generate_series(1, 30) g;
TRUNCATE parent RESTART IDENTITY CASCADE;
INSERT INTO parent (name) VALUES ('after truncate');
INSERT INTO child (parent_id, v) VALUES (1, 'after truncate');

-- A multi-statement transaction mixing tables, with a rollback in between.
BEGIN;
INSERT INTO kv VALUES (600000, 'in txn', 1);
SAVEPOINT s1;
INSERT INTO kv VALUES (600001, 'rolled back', 1);
ROLLBACK TO s1;
UPDATE docs SET counter = 100 WHERE id = 1;
DELETE FROM kv WHERE id = 500000;
COMMIT;
BEGIN;
INSERT INTO kv VALUES (700000, 'never', 1);
ROLLBACK;
