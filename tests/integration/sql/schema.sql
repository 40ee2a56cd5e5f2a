-- tests/integration/sql/schema.sql - tables of every shape rt must replicate; created on
-- the source and every replica.
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);

CREATE TABLE kv (id int PRIMARY KEY, v text, n numeric);

CREATE TABLE alltypes (
    id bigint PRIMARY KEY,
    c_int2 int2, c_int4 int4, c_int8 int8, c_num numeric(20, 6), c_text text,
    c_bytea bytea, c_bool bool, c_jsonb jsonb, c_uuid uuid, c_ts timestamptz, c_date date,
    c_int_arr int[], c_text_arr text[], c_mood mood, c_pos posint, c_json json, c_float float8
);

-- A large TOASTed column that must survive updates of other columns.
CREATE TABLE docs (id int PRIMARY KEY, body text, counter int);
ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;

-- No primary key, duplicate rows allowed.
CREATE TABLE nopk (a int, b text, j json);
ALTER TABLE nopk REPLICA IDENTITY FULL;

CREATE TABLE byindex (a int NOT NULL, b text NOT NULL, c text);
CREATE UNIQUE INDEX byindex_ab ON byindex (a, b);
ALTER TABLE byindex REPLICA IDENTITY USING INDEX byindex_ab;

CREATE SCHEMA "Mixed Case";
CREATE TABLE "Mixed Case"."we;ird name" ("Key Col" int PRIMARY KEY, "Col ""q""" text, "select" int);

CREATE TABLE parent (id serial PRIMARY KEY, name text);
CREATE TABLE child (id serial PRIMARY KEY, parent_id int REFERENCES parent (id), v text);

CREATE TABLE big (id int PRIMARY KEY, v text);
