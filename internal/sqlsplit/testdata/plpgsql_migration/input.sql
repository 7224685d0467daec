-- 0042_orders.sql: orders, their audit trail, and the indexes they need.
-- Note: don't split on the ';' in this comment, or in "quoted; names".

CREATE TABLE IF NOT EXISTS orders (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    status      text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'paid', 'shipped')),
    note        text DEFAULT 'it''s fine; really',
    "total; with tax" numeric(12, 2) NOT NULL DEFAULT 0
);

COMMENT ON TABLE orders IS 'Customer orders; one row per checkout.';

/*
 * The audit function keeps a copy of each change.
 * /* Nested comment: PostgreSQL allows it; psql too. */
 * Still a comment here; with a quote ' that means nothing.
 */
CREATE OR REPLACE FUNCTION orders_audit() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_action text := TG_OP;
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO orders_log (order_id, action, at) VALUES (OLD.id, v_action, now());
        RETURN OLD;
    END IF;
    INSERT INTO orders_log (order_id, action, at) VALUES (NEW.id, v_action, now());
    RAISE NOTICE 'order %: %', NEW.id, E'logged\tok';
    RETURN NEW;
END;
$$;

CREATE TRIGGER orders_audit
    AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_audit();

CREATE FUNCTION order_total(p_id bigint) RETURNS numeric
    LANGUAGE plpgsql STABLE
    AS $fn$
BEGIN
    -- A $$ inside this body is just text; so is this ';'.
    RETURN (SELECT "total; with tax" FROM orders WHERE id = p_id);
END
$fn$;

DO $migrate$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT id FROM orders WHERE status = 'new' LOOP
        EXECUTE format('UPDATE orders SET note = %L WHERE id = $1', 'migrated; ok') USING r.id;
    END LOOP;
END
$migrate$;

CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_idx ON orders (customer_id);
CREATE UNIQUE INDEX CONCURRENTLY orders_note_idx ON orders (lower(note)) WHERE status <> 'shipped';
