-- bench/sql/replica.sql - replica-only additions, run after schema.sql on each replica.
-- The apply time of each latency row: neither replicator sends this column, so the
-- replica's default fills it when the row is applied.
ALTER TABLE bench_lat ADD COLUMN applied timestamptz DEFAULT clock_timestamp();
-- The visibility of each latency row: a deferred trigger stamps it when its replica
-- transaction commits (both replicators give the replica commit the source's commit
-- time, so pg_xact_commit_timestamp cannot tell). ENABLE ALWAYS: both apply as a replica.
-- Names are schema-qualified: a native apply worker runs with an empty search_path.
CREATE TABLE public.bench_lat_vis (id bigint PRIMARY KEY, visible timestamptz NOT NULL);
CREATE FUNCTION public.bench_lat_vis() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO public.bench_lat_vis VALUES (NEW.id, pg_catalog.clock_timestamp()); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER bench_lat_vis AFTER INSERT ON public.bench_lat
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.bench_lat_vis();
ALTER TABLE public.bench_lat ENABLE ALWAYS TRIGGER bench_lat_vis;
