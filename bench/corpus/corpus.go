// Package corpus generates a deterministic, realistic migration folder for
// benchmarks and tests: the kind of history a product accumulates over a few
// years (tables with constraints, indexes and comments; columns added and
// backfilled; PL/pgSQL functions; views; seed data; partial and composite
// indexes; triggers).
//
// The output depends only on n, and a shorter corpus is a prefix of a longer
// one: Generate(100) is the first 100 files of Generate(300). Every file
// applies cleanly, in order, to an empty database, inside a transaction of its
// own or all together in one (no file needs dbinit:no-transaction), so the
// same folder can be loaded by dbinit and by psql -1.
//
// 300 files come to about 1.1 MB: 1,600 statements, 90 tables, 5,800 seed
// rows.
package corpus

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// File is one generated migration file.
type File struct {
	Name string // "042_create_billing_invoices.sql"
	SQL  string
}

// Write writes the n files of Generate(n) into dir, creating it if needed.
func Write(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range Generate(n) {
		if err := os.WriteFile(filepath.Join(dir, f.Name), []byte(f.SQL), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Generate returns n migration files, in order.
func Generate(n int) []File {
	g := &gen{r: rng{s: 0x5eed_db1_2024}, names: map[string]bool{}}
	width := max(3, len(strconv.Itoa(n)))
	files := make([]File, 0, n)
	for v := 1; v <= n; v++ {
		g.v = v
		g.b.Reset()
		slug := g.next()
		files = append(files, File{Name: fmt.Sprintf("%0*d_%s.sql", width, v, slug), SQL: g.b.String()})
	}
	return files
}

// rng is splitmix64: small, fast and, unlike math/rand, guaranteed to give
// the same sequence forever.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rng) intn(n int) int             { return int(r.next() % uint64(n)) }
func (r *rng) between(lo, hi int) int     { return lo + r.intn(hi-lo+1) }
func (r *rng) chance(percent int) bool    { return r.intn(100) < percent }
func (r *rng) pick(xs []string) string    { return xs[r.intn(len(xs))] }
func (r *rng) pickT(ts []*table) *table   { return ts[r.intn(len(ts))] }
func (r *rng) pickC(cs []*column) *column { return cs[r.intn(len(cs))] }

// column is a column of a generated table.
type column struct {
	name string
	def  string                       // type and constraints, as in CREATE TABLE
	kind string                       // what values look like: see value
	ref  *table                       // for foreign keys
	seed bool                         // listed in the seed INSERTs
	num  bool                         // numeric, usable in sums
	vals []string                     // for kind "enum": allowed values
	fn   func(r *rng, row int) string // for kind "custom"
}

type table struct {
	schema, name string
	cols         []*column
	statuses     []string
	rows         int // rows seeded so far; ids are 1..rows
	triggers     bool
	views        int
	indexes      int
	colNames     map[string]bool
}

func (t *table) qname() string { return t.schema + "." + t.name }

func (t *table) col(name string) *column {
	for _, c := range t.cols {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (t *table) seedCols() []*column {
	var out []*column
	for _, c := range t.cols {
		if c.seed {
			out = append(out, c)
		}
	}
	return out
}

type gen struct {
	r      rng
	v      int // version of the file being written
	b      strings.Builder
	tables []*table
	names  map[string]bool // every relation, index, trigger and function name used
	funcs  int
}

func (g *gen) p(format string, args ...any) { fmt.Fprintf(&g.b, format, args...) }

// unique returns base, or base_2, base_3... the first one not used yet.
func (g *gen) unique(base string) string {
	name := base
	for i := 2; g.names[name]; i++ {
		name = fmt.Sprintf("%s_%d", base, i)
	}
	g.names[name] = true
	return name
}

// next writes the body of file g.v and returns its name's slug.
func (g *gen) next() string {
	if g.v == 1 {
		return g.bootstrap()
	}
	// The first few files lay down enough tables for the rest to use.
	if len(g.tables) < 4 {
		return g.createTable()
	}
	switch k := g.r.intn(100); {
	case k < 30:
		return g.createTable()
	case k < 43:
		return g.alterTable()
	case k < 55:
		return g.function()
	case k < 63:
		return g.view()
	case k < 81:
		return g.seed()
	case k < 90:
		return g.indexes()
	default:
		return g.triggers()
	}
}

var schemas = []struct{ name, comment string }{
	{"core", "Accounts, users, organisations and their settings"},
	{"billing", "Invoices, payments, plans and everything money"},
	{"catalog", "Products, prices and stock"},
	{"ops", "Shipments, tickets and the work behind them"},
}

var tableWords = map[string][]string{
	"core":    {"accounts", "users", "organisations", "teams", "memberships", "roles", "permissions", "sessions", "api_keys", "addresses", "settings", "invitations"},
	"billing": {"invoices", "invoice_lines", "payments", "refunds", "subscriptions", "plans", "coupons", "tax_rates", "credit_notes", "payouts", "ledger_entries"},
	"catalog": {"products", "variants", "categories", "prices", "inventories", "warehouses", "suppliers", "collections", "bundles", "reviews", "media"},
	"ops":     {"shipments", "parcels", "carriers", "returns", "tickets", "ticket_comments", "tasks", "jobs", "webhooks", "incidents", "checklists"},
}

var statusSets = [][]string{
	{"draft", "active", "archived"},
	{"pending", "paid", "void", "refunded"},
	{"new", "open", "on_hold", "closed"},
	{"queued", "running", "done", "failed"},
	{"requested", "approved", "rejected"},
}

var (
	firstWords  = []string{"Northwind", "Contoso", "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Soylent", "Gringotts", "Oceanic", "O'Brien", "D'Angelo", "Zürich", "Malmö", "Kraków"}
	secondWords = []string{"Traders", "Supplies", "Logistics", "Holdings", "Partners", "Labs", "Foods", "Textiles", "Systems", "Outfitters", "Freight", "Studio", "Works", "Group", "& Sons"}
	words       = []string{"alpha", "bravo", "coastal", "delta", "ember", "fjord", "granite", "harbor", "indigo", "juniper", "kestrel", "lumen", "meadow", "nimbus", "orchid", "pioneer", "quartz", "river", "summit", "tundra"}
	countries   = []string{"DE", "FR", "NL", "SE", "PL", "US", "GB", "ES", "IT", "CH"}
	currencies  = []string{"EUR", "USD", "GBP", "SEK", "CHF", "PLN"}
)

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (r *rng) date() string {
	return fmt.Sprintf("'%04d-%02d-%02d'", r.between(2019, 2025), r.between(1, 12), r.between(1, 28))
}

func (r *rng) uuid() string {
	a, b := r.next(), r.next()
	return fmt.Sprintf("'%08x-%04x-4%03x-8%03x-%012x'", uint32(a), uint16(a>>32), uint16(a>>48)&0xfff, uint16(b)&0xfff, b>>16&0xffffffffffff)
}

// value is a literal for column c in seed row `row` of t.
func (g *gen) value(t *table, c *column, row int) string {
	r := &g.r
	switch c.kind {
	case "code":
		return fmt.Sprintf("'%s-%06d'", strings.ToUpper(t.name[:3]), row)
	case "name":
		return quote(r.pick(firstWords) + " " + r.pick(secondWords))
	case "enum":
		return quote(r.pick(c.vals))
	case "fk":
		if c.ref.rows == 0 || r.chance(10) {
			return "NULL"
		}
		return strconv.Itoa(r.between(1, c.ref.rows))
	case "custom":
		return c.fn(r, row)
	}
	panic("corpus: no values for " + c.kind)
}

// extraColumns are the optional columns of a new table.
var extraColumns = []column{
	{name: "amount", def: "numeric(12,2) NOT NULL DEFAULT 0 CHECK (amount >= 0)", num: true, fn: func(r *rng, _ int) string {
		return fmt.Sprintf("%d.%02d", r.intn(5000), r.intn(100))
	}},
	{name: "quantity", def: "integer NOT NULL DEFAULT 1 CHECK (quantity >= 0)", num: true, fn: func(r *rng, _ int) string { return strconv.Itoa(r.intn(250)) }},
	{name: "is_active", def: "boolean NOT NULL DEFAULT true", fn: func(r *rng, _ int) string {
		if r.chance(80) {
			return "true"
		}
		return "false"
	}},
	{name: "attributes", def: "jsonb NOT NULL DEFAULT '{}'::jsonb", fn: func(r *rng, row int) string {
		return fmt.Sprintf(`'{"tier": %q, "score": %d, "tags": [%q, %q]}'`, r.pick([]string{"free", "pro", "enterprise"}), r.intn(100), r.pick(words), r.pick(words))
	}},
	{name: "email", def: "core.email", fn: func(r *rng, row int) string {
		return fmt.Sprintf("'%s.%d@example.com'", r.pick(words), row)
	}},
	{name: "description", def: "text", fn: func(r *rng, _ int) string {
		if r.chance(20) {
			return "NULL"
		}
		return quote(fmt.Sprintf("%s %s %s, see the %s notes", r.pick(words), r.pick(words), r.pick(words), r.pick(words)))
	}},
	{name: "starts_on", def: "date", fn: func(r *rng, _ int) string { return r.date() }},
	{name: "currency", def: "char(3) NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$')", fn: func(r *rng, _ int) string { return quote(r.pick(currencies)) }},
	{name: "weight_kg", def: "real CHECK (weight_kg IS NULL OR weight_kg > 0)", num: true, fn: func(r *rng, _ int) string {
		return fmt.Sprintf("%d.%d", r.between(1, 80), r.intn(10))
	}},
	{name: "sort_order", def: "integer NOT NULL DEFAULT 0", num: true, fn: func(r *rng, row int) string { return strconv.Itoa(row * 10) }},
	{name: "external_ref", def: "uuid", fn: func(r *rng, _ int) string { return r.uuid() }},
	{name: "tags", def: "text[] NOT NULL DEFAULT '{}'", fn: func(r *rng, _ int) string {
		return fmt.Sprintf("ARRAY[%s, %s]", quote(r.pick(words)), quote(r.pick(words)))
	}},
	{name: "country_code", def: "char(2) NOT NULL DEFAULT 'DE'", fn: func(r *rng, _ int) string { return quote(r.pick(countries)) }},
	{name: "rating", def: "smallint CHECK (rating BETWEEN 1 AND 5)", num: true, fn: func(r *rng, _ int) string { return strconv.Itoa(r.between(1, 5)) }},
	{name: "happened_at", def: "timestamptz", fn: func(r *rng, _ int) string {
		return fmt.Sprintf("'%04d-%02d-%02d %02d:%02d:00+00'", r.between(2020, 2025), r.between(1, 12), r.between(1, 28), r.intn(24), r.intn(60))
	}},
}

func (g *gen) bootstrap() string {
	g.p("-- %03d: schemas, shared types and the functions every table uses.\n\n", g.v)
	for _, s := range schemas {
		g.p("CREATE SCHEMA %s;\nCOMMENT ON SCHEMA %s IS %s;\n\n", s.name, s.name, quote(s.comment))
	}
	g.p(`CREATE SCHEMA audit;
COMMENT ON SCHEMA audit IS 'Who changed what, written by triggers';

CREATE DOMAIN core.email AS text CHECK (VALUE ~ '^[^@\s]+@[^@\s]+$');
COMMENT ON DOMAIN core.email IS 'An e-mail address, loosely checked';

CREATE TYPE core.priority AS ENUM ('low', 'normal', 'high', 'urgent');

CREATE TABLE audit.events (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name text        NOT NULL,
    operation  text        NOT NULL CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE')),
    row_id     bigint,
    changed_at timestamptz NOT NULL DEFAULT now(),
    changed_by text        NOT NULL DEFAULT current_user
);
COMMENT ON TABLE audit.events IS 'One row per changed row of an audited table';
CREATE INDEX events_table_row_idx ON audit.events (table_name, row_id);
CREATE INDEX events_changed_at_idx ON audit.events (changed_at DESC);

CREATE FUNCTION core.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION core.touch_updated_at() IS 'BEFORE UPDATE trigger: keeps updated_at current';

CREATE FUNCTION audit.record_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        v_id := OLD.id;
    ELSE
        v_id := NEW.id;
    END IF;
    INSERT INTO audit.events (table_name, operation, row_id)
    VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, TG_OP, v_id);
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION audit.record_change() IS 'AFTER trigger: appends to audit.events';
`)
	return "bootstrap_schemas"
}

func (g *gen) createTable() string {
	r := &g.r
	s := schemas[r.intn(len(schemas))].name
	word := r.pick(tableWords[s])
	name := g.unique(word)
	t := &table{schema: s, name: name, statuses: statusSets[r.intn(len(statusSets))], colNames: map[string]bool{}}
	add := func(c *column) {
		t.cols = append(t.cols, c)
		t.colNames[c.name] = true
	}
	add(&column{name: "id", def: "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY", num: true})
	add(&column{name: "code", def: "text NOT NULL", kind: "code", seed: true})
	add(&column{name: "name", def: "text NOT NULL", kind: "name", seed: true})
	add(&column{name: "status", def: fmt.Sprintf("text NOT NULL DEFAULT %s CHECK (status IN (%s))", quote(t.statuses[0]), quoteList(t.statuses)),
		kind: "enum", vals: t.statuses, seed: true})
	// A few optional columns, in the pool's order.
	nExtra := r.between(3, 8)
	chosen := map[int]bool{}
	for len(chosen) < nExtra {
		chosen[r.intn(len(extraColumns))] = true
	}
	for i := range extraColumns {
		if chosen[i] {
			c := extraColumns[i]
			c.kind, c.seed = "custom", true
			add(&c)
		}
	}
	// Most tables point at one or two earlier ones.
	var fks []*column
	if len(g.tables) > 0 && r.chance(70) {
		for range r.between(1, 2) {
			parent := r.pickT(g.tables)
			cn := singular(parent.name) + "_id"
			if t.colNames[cn] {
				continue
			}
			c := &column{name: cn, def: fmt.Sprintf("bigint REFERENCES %s (id) ON DELETE SET NULL", parent.qname()), kind: "fk", ref: parent, seed: true, num: true}
			add(c)
			fks = append(fks, c)
		}
	}
	add(&column{name: "created_at", def: "timestamptz NOT NULL DEFAULT now()"})
	add(&column{name: "updated_at", def: "timestamptz NOT NULL DEFAULT now()"})

	g.p("-- %03d: %s.\n-- Pattern: a new table with constraints, indexes and comments.\n\n", g.v, strings.ReplaceAll(name, "_", " "))
	g.p("CREATE TABLE %s (\n", t.qname())
	w := 0
	for _, c := range t.cols {
		w = max(w, len(c.name))
	}
	for _, c := range t.cols {
		g.p("    %-*s %s,\n", w, c.name, c.def)
	}
	g.p("    CONSTRAINT %s UNIQUE (code)\n);\n", g.unique(name+"_code_key"))
	g.p("COMMENT ON TABLE %s IS %s;\n", t.qname(), quote(fmt.Sprintf("%s of the %s area; one row per %s", titleCase(strings.ReplaceAll(name, "_", " ")), s, strings.ReplaceAll(singular(word), "_", " "))))
	g.p("COMMENT ON COLUMN %s.code IS 'Human-readable identifier, unique, shown in the UI and in URLs';\n", t.qname())
	g.p("COMMENT ON COLUMN %s.status IS %s;\n", t.qname(), quote("Lifecycle: "+strings.Join(t.statuses, " -> ")))
	for _, c := range t.cols {
		if c.kind == "custom" && r.chance(30) {
			g.p("COMMENT ON COLUMN %s.%s IS %s;\n", t.qname(), c.name, quote(fmt.Sprintf("The %s of the %s", strings.ReplaceAll(c.name, "_", " "), strings.ReplaceAll(singular(word), "_", " "))))
		}
	}
	g.p("\n")
	for _, c := range fks {
		g.p("CREATE INDEX %s ON %s (%s);\n", g.unique(name+"_"+c.name+"_idx"), t.qname(), c.name)
	}
	g.p("CREATE INDEX %s ON %s (status, created_at DESC);\n", g.unique(name+"_status_created_idx"), t.qname())
	if t.col("attributes") != nil && r.chance(50) {
		g.p("CREATE INDEX %s ON %s USING gin (attributes jsonb_path_ops);\n", g.unique(name+"_attributes_idx"), t.qname())
	}
	g.tables = append(g.tables, t)
	return "create_" + s + "_" + name
}

// addedColumns are what later files add to existing tables.
var addedColumns = []struct {
	name, def, backfill string // backfill: SET expression, "" = none
	notNullAfter        bool
	dflt                string // default set after the backfill
}{
	{name: "priority", def: "core.priority NOT NULL DEFAULT 'normal'", backfill: "CASE WHEN id % 7 = 0 THEN 'high'::core.priority ELSE 'normal'::core.priority END"},
	{name: "notes", def: "text", backfill: "'imported from the legacy system as ' || code"},
	{name: "archived_at", def: "timestamptz", backfill: "CASE WHEN status = '%s' THEN updated_at END"},
	{name: "source", def: "text NOT NULL DEFAULT 'web'", backfill: "CASE WHEN id % 3 = 0 THEN 'import' ELSE 'web' END"},
	{name: "score", def: "numeric(6,2)", backfill: "round((id % 100)::numeric / 3, 2)", notNullAfter: true, dflt: "0"},
	{name: "region", def: "text", backfill: "CASE WHEN id % 2 = 0 THEN 'eu' ELSE 'us' END", notNullAfter: true, dflt: "'eu'"},
	{name: "legacy_id", def: "bigint", backfill: "id + 100000"},
	{name: "row_version", def: "integer NOT NULL DEFAULT 1"},
	{name: "locale", def: "text NOT NULL DEFAULT 'en' CHECK (locale ~ '^[a-z]{2}$')"},
	{name: "search_text", def: "text", backfill: "lower(code || ' ' || name)"},
	{name: "deleted_at", def: "timestamptz"},
	{name: "metadata", def: "jsonb NOT NULL DEFAULT '{}'::jsonb", backfill: "jsonb_build_object('migrated', true, 'code', code)"},
}

func (g *gen) alterTable() string {
	r := &g.r
	t := r.pickT(g.tables)
	g.p("-- %03d: new columns on %s, backfilled.\n-- Pattern: ALTER TABLE ADD COLUMN, UPDATE the existing rows, then tighten.\n\n", g.v, t.qname())
	added := 0
	var first string
	for _, i := range permutation(r, len(addedColumns)) {
		a := addedColumns[i]
		if t.colNames[a.name] {
			continue
		}
		t.colNames[a.name] = true
		t.cols = append(t.cols, &column{name: a.name})
		if first == "" {
			first = a.name
		}
		g.p("ALTER TABLE %s ADD COLUMN %s %s;\n", t.qname(), a.name, a.def)
		if a.backfill != "" {
			expr := a.backfill
			if strings.Contains(expr, "%s") {
				expr = fmt.Sprintf(expr, t.statuses[len(t.statuses)-1])
			}
			g.p("UPDATE %s SET %s = %s WHERE %s IS DISTINCT FROM %s;\n", t.qname(), a.name, expr, a.name, expr)
		}
		if a.notNullAfter {
			g.p("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s;\n", t.qname(), a.name, a.dflt)
			g.p("UPDATE %s SET %s = DEFAULT WHERE %s IS NULL;\n", t.qname(), a.name, a.name)
			g.p("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL;\n", t.qname(), a.name)
		}
		g.p("COMMENT ON COLUMN %s.%s IS %s;\n\n", t.qname(), a.name, quote(fmt.Sprintf("Added in %03d", g.v)))
		added++
		if added == 1 && r.chance(40) || added == 3 {
			break
		}
	}
	if added == 0 {
		// Every column was added already: rename the comment instead.
		g.p("COMMENT ON TABLE %s IS %s;\n", t.qname(), quote(fmt.Sprintf("%s (revised in %03d)", t.name, g.v)))
		return "comment_" + t.name
	}
	if first == "region" || first == "source" || first == "locale" {
		g.p("CREATE INDEX %s ON %s (%s, status);\n", g.unique(t.name+"_"+first+"_status_idx"), t.qname(), first)
	}
	g.p("ANALYZE %s;\n", t.qname())
	return "alter_" + t.name + "_add_" + first
}

func (g *gen) function() string {
	r := &g.r
	g.funcs++
	switch r.intn(4) {
	case 0:
		return g.sumFunction(r.pickT(g.tables))
	case 1:
		return g.dmlFunction(r.pickT(g.tables))
	case 2:
		return g.sqlFunction(r.pickT(g.tables))
	}
	return g.pureFunction()
}

// sumFunction loops over a table's rows with IF/ELSIF.
func (g *gen) sumFunction(t *table) string {
	var nums []*column
	for _, c := range t.cols {
		if c.num && c.kind != "fk" {
			nums = append(nums, c)
		}
	}
	c := g.r.pickC(nums)
	fn := g.unique(t.name + "_" + c.name + "_summary")
	g.p("-- %03d: %s.%s(): totals of %s by status.\n-- Pattern: a PL/pgSQL function with a FOR loop and IF/ELSIF.\n\n", g.v, t.schema, fn, c.name)
	g.p(`CREATE OR REPLACE FUNCTION %[1]s.%[2]s(p_status text DEFAULT NULL, p_cap numeric DEFAULT 1000000)
RETURNS TABLE (status text, rows_seen bigint, total numeric, capped boolean)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    r       record;
    v_total numeric := 0;
    v_rows  bigint  := 0;
    v_last  text;
BEGIN
    FOR r IN
        SELECT t.status AS st, t.%[3]s::numeric AS val
        FROM %[4]s t
        WHERE p_status IS NULL OR t.status = p_status
        ORDER BY t.status, t.id
    LOOP
        IF v_last IS NOT NULL AND r.st <> v_last THEN
            status := v_last; rows_seen := v_rows; total := v_total; capped := v_total >= p_cap;
            RETURN NEXT;
            v_total := 0;
            v_rows := 0;
        END IF;
        v_last := r.st;
        IF r.val IS NULL THEN
            CONTINUE;
        ELSIF v_total + r.val > p_cap THEN
            v_total := p_cap;
        ELSE
            v_total := v_total + r.val;
        END IF;
        v_rows := v_rows + 1;
    END LOOP;
    IF v_last IS NOT NULL THEN
        status := v_last; rows_seen := v_rows; total := v_total; capped := v_total >= p_cap;
        RETURN NEXT;
    END IF;
END;
$$;
COMMENT ON FUNCTION %[1]s.%[2]s(text, numeric) IS 'Sum of %[3]s per status, capped at p_cap';
`, t.schema, fn, c.name, t.qname())
	return "function_" + fn
}

// dmlFunction changes rows and reports how many.
func (g *gen) dmlFunction(t *table) string {
	fn := g.unique("archive_stale_" + t.name)
	last := t.statuses[len(t.statuses)-1]
	g.p("-- %03d: %s.%s(): a maintenance job's entry point.\n-- Pattern: a PL/pgSQL function that updates rows, with a WHILE loop over batches.\n\n", g.v, t.schema, fn)
	g.p(`CREATE OR REPLACE FUNCTION %[1]s.%[2]s(p_older_than interval DEFAULT '90 days', p_batch integer DEFAULT 500)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_done  integer := 0;
    v_batch integer;
BEGIN
    IF p_batch <= 0 THEN
        RAISE EXCEPTION 'p_batch must be positive, got %%', p_batch USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        UPDATE %[3]s
        SET status = %[4]s
        WHERE id IN (
            SELECT id FROM %[3]s
            WHERE status <> %[4]s AND updated_at < now() - p_older_than
            ORDER BY id
            LIMIT p_batch
            FOR UPDATE SKIP LOCKED
        );
        GET DIAGNOSTICS v_batch = ROW_COUNT;
        v_done := v_done + v_batch;
        EXIT WHEN v_batch < p_batch;
    END LOOP;
    RETURN v_done;
END;
$$;
COMMENT ON FUNCTION %[1]s.%[2]s(interval, integer) IS 'Moves rows untouched for p_older_than to %[5]s; returns how many';
`, t.schema, fn, t.qname(), quote(last), last)
	return "function_" + fn
}

// sqlFunction is a LANGUAGE sql lookup, joined to the parent table when
// there is one.
func (g *gen) sqlFunction(t *table) string {
	fn := g.unique("find_" + t.name)
	var fk *column
	for _, c := range t.cols {
		if c.kind == "fk" {
			fk = c
			break
		}
	}
	g.p("-- %03d: %s.%s(): search by code or name.\n-- Pattern: a SQL function returning a table.\n\n", g.v, t.schema, fn)
	g.p("CREATE OR REPLACE FUNCTION %s.%s(p_query text, p_limit integer DEFAULT 20)\n", t.schema, fn)
	if fk != nil {
		g.p(`RETURNS TABLE (id bigint, code text, name text, status text, parent_name text)
LANGUAGE sql STABLE
AS $$
    SELECT t.id, t.code, t.name, t.status, p.name
    FROM %[1]s t
    LEFT JOIN %[2]s p ON p.id = t.%[3]s
    WHERE t.code ILIKE p_query || '%%' OR t.name ILIKE '%%' || p_query || '%%'
    ORDER BY t.code
    LIMIT p_limit;
$$;
`, t.qname(), fk.ref.qname(), fk.name)
	} else {
		g.p(`RETURNS TABLE (id bigint, code text, name text, status text)
LANGUAGE sql STABLE
AS $$
    SELECT t.id, t.code, t.name, t.status
    FROM %[1]s t
    WHERE t.code ILIKE p_query || '%%' OR t.name ILIKE '%%' || p_query || '%%'
    ORDER BY t.code
    LIMIT p_limit;
$$;
`, t.qname())
	}
	g.p("COMMENT ON FUNCTION %s.%s(text, integer) IS 'Prefix match on code, substring match on name';\n", t.schema, fn)
	return "function_" + fn
}

// pureFunctions are helpers that get replaced by later versions of
// themselves, as such helpers do.
var pureFunctions = []struct{ name, sig, body string }{
	{"luhn_valid", "p_digits text", `RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT
AS $$
DECLARE
    v_sum    integer := 0;
    v_digit  integer;
    v_double boolean := false;
    i        integer;
BEGIN
    IF p_digits !~ '^[0-9]+$' THEN
        RETURN false;
    END IF;
    i := length(p_digits);
    WHILE i > 0 LOOP
        v_digit := substr(p_digits, i, 1)::integer;
        IF v_double THEN
            v_digit := v_digit * 2;
            IF v_digit > 9 THEN
                v_digit := v_digit - 9;
            END IF;
        END IF;
        v_sum := v_sum + v_digit;
        v_double := NOT v_double;
        i := i - 1;
    END LOOP;
    RETURN v_sum %% 10 = 0;
END;
$$;`},
	{"slugify", "p_text text", `RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT
AS $$
DECLARE
    v text := lower(p_text);
BEGIN
    v := translate(v, 'äöüåéèàçñ', 'aouaeeacn');
    v := regexp_replace(v, '[^a-z0-9]+', '-', 'g');
    v := trim(BOTH '-' FROM v);
    IF v = '' THEN
        RETURN 'n-a';
    END IF;
    RETURN left(v, %d);
END;
$$;`},
	{"business_days_between", "p_from date, p_to date", `RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT
AS $$
DECLARE
    d      date := p_from;
    v_days integer := 0;
BEGIN
    IF p_to < p_from THEN
        RETURN -core.business_days_between(p_to, p_from);
    END IF;
    WHILE d < p_to LOOP
        IF extract(isodow FROM d) < 6 THEN
            v_days := v_days + 1;
        END IF;
        d := d + 1;
    END LOOP;
    RETURN v_days + %d;
END;
$$;`},
	{"clamp_amount", "p_value numeric, p_min numeric, p_max numeric", `RETURNS numeric
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF p_value IS NULL THEN
        RETURN NULL;
    ELSIF p_value < p_min THEN
        RETURN p_min;
    ELSIF p_value > p_max THEN
        RETURN p_max;
    END IF;
    RETURN round(p_value, %d);
END;
$$;`},
}

func (g *gen) pureFunction() string {
	f := pureFunctions[g.r.intn(len(pureFunctions))]
	body := f.body
	if strings.Contains(body, "%d") {
		switch f.name {
		case "slugify":
			body = fmt.Sprintf(body, g.r.between(40, 80))
		case "business_days_between":
			body = fmt.Sprintf(body, 0)
		default:
			body = fmt.Sprintf(body, g.r.between(2, 4))
		}
	} else {
		body = strings.ReplaceAll(body, "%%", "%")
	}
	g.p("-- %03d: core.%s(), new or revised.\n-- Pattern: CREATE OR REPLACE of a PL/pgSQL helper.\n\n", g.v, f.name)
	g.p("CREATE OR REPLACE FUNCTION core.%s(%s)\n%s\n", f.name, f.sig, body)
	g.p("COMMENT ON FUNCTION core.%s IS %s;\n", f.name, quote(fmt.Sprintf("Helper, revised in %03d", g.v)))
	return "function_core_" + f.name
}

func (g *gen) view() string {
	r := &g.r
	t := r.pickT(g.tables)
	t.views++
	if t.views%2 == 1 {
		name := g.unique(t.name + "_current")
		var fk *column
		for _, c := range t.cols {
			if c.kind == "fk" {
				fk = c
				break
			}
		}
		g.p("-- %03d: %s.%s: the rows the application lists.\n-- Pattern: a view with a join.\n\n", g.v, t.schema, name)
		g.p("CREATE VIEW %s.%s AS\nSELECT t.id, t.code, t.name, t.status, t.created_at, t.updated_at", t.schema, name)
		if fk != nil {
			g.p(",\n       p.code AS %s_code, p.name AS %s_name\nFROM %s t\nLEFT JOIN %s p ON p.id = t.%s\n", singular(fk.ref.name), singular(fk.ref.name), t.qname(), fk.ref.qname(), fk.name)
		} else {
			g.p("\nFROM %s t\n", t.qname())
		}
		g.p("WHERE t.status <> %s;\n", quote(t.statuses[len(t.statuses)-1]))
		g.p("COMMENT ON VIEW %s.%s IS 'Everything but the final state, newest first in the UI';\n", t.schema, name)
		return "view_" + name
	}
	name := g.unique(t.name + "_by_status")
	g.p("-- %03d: %s.%s: counts for the dashboard.\n-- Pattern: an aggregate view.\n\n", g.v, t.schema, name)
	g.p("CREATE VIEW %s.%s AS\nSELECT t.status,\n       count(*) AS n,\n       min(t.created_at) AS first_created_at,\n       max(t.updated_at) AS last_updated_at", t.schema, name)
	for _, c := range t.cols {
		if c.num && c.kind == "custom" {
			g.p(",\n       sum(t.%s) AS total_%s", c.name, c.name)
		}
	}
	g.p("\nFROM %s t\nGROUP BY t.status;\n", t.qname())
	g.p("COMMENT ON VIEW %s.%s IS 'Row counts and totals per status';\n", t.schema, name)
	return "view_" + name
}

func (g *gen) seed() string {
	r := &g.r
	// Prefer tables with few rows.
	t := r.pickT(g.tables)
	if o := r.pickT(g.tables); o.rows < t.rows {
		t = o
	}
	n := r.between(50, 200)
	cols := t.seedCols()
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	g.p("-- %03d: seed data for %s (%d rows).\n-- Pattern: multi-row INSERTs of reference data.\n", g.v, t.qname(), n)
	for done := 0; done < n; {
		chunk := min(50, n-done)
		g.p("\nINSERT INTO %s (%s) VALUES\n", t.qname(), strings.Join(names, ", "))
		for i := range chunk {
			row := t.rows + 1
			vals := make([]string, len(cols))
			for j, c := range cols {
				vals[j] = g.value(t, c, row)
			}
			t.rows++
			sep := ","
			if i == chunk-1 {
				sep = ";"
			}
			g.p("    (%s)%s\n", strings.Join(vals, ", "), sep)
		}
		done += chunk
	}
	return fmt.Sprintf("seed_%s_%d", t.name, t.rows)
}

func (g *gen) indexes() string {
	r := &g.r
	t := r.pickT(g.tables)
	t.indexes++
	g.p("-- %03d: indexes on %s for the new queries.\n-- Pattern: partial, composite and expression indexes.\n\n", g.v, t.qname())
	g.p("CREATE INDEX %s ON %s (lower(name) text_pattern_ops);\n", g.unique(t.name+"_lower_name_idx"), t.qname())
	g.p("CREATE INDEX %s ON %s (updated_at) WHERE status = %s;\n", g.unique(t.name+"_updated_"+t.statuses[0]+"_idx"), t.qname(), quote(t.statuses[0]))
	var extra []*column
	for _, c := range t.cols {
		if c.kind == "custom" || c.kind == "fk" {
			extra = append(extra, c)
		}
	}
	if len(extra) > 0 {
		c := r.pickC(extra)
		if c.name != "attributes" && c.name != "tags" {
			g.p("CREATE INDEX %s ON %s (%s, status) INCLUDE (code);\n", g.unique(t.name+"_"+c.name+"_status_idx"), t.qname(), c.name)
		}
	}
	g.p("CREATE UNIQUE INDEX %s ON %s (code, id) WHERE status <> %s;\n", g.unique(t.name+"_open_code_key"), t.qname(), quote(t.statuses[len(t.statuses)-1]))
	return "indexes_" + t.name
}

func (g *gen) triggers() string {
	r := &g.r
	var cand []*table
	for _, t := range g.tables {
		if !t.triggers {
			cand = append(cand, t)
		}
	}
	if len(cand) == 0 {
		return g.view()
	}
	t := r.pickT(cand)
	t.triggers = true
	g.p("-- %03d: triggers on %s: updated_at, audit trail, checks.\n-- Pattern: trigger functions and CREATE TRIGGER.\n\n", g.v, t.qname())
	g.p("CREATE TRIGGER %s BEFORE UPDATE ON %s\n    FOR EACH ROW EXECUTE FUNCTION core.touch_updated_at();\n", g.unique(t.name+"_touch"), t.qname())
	g.p("CREATE TRIGGER %s AFTER INSERT OR UPDATE OR DELETE ON %s\n    FOR EACH ROW EXECUTE FUNCTION audit.record_change();\n", g.unique(t.name+"_audit"), t.qname())
	if r.chance(60) {
		fn := g.unique(t.name + "_check")
		final := quote(t.statuses[len(t.statuses)-1])
		g.p(`
CREATE FUNCTION %[1]s.%[2]s() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF length(NEW.code) = 0 OR NEW.code <> upper(NEW.code) THEN
        RAISE EXCEPTION '%[3]s: code %% must be upper case and not empty', NEW.code
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF OLD.status = %[4]s AND NEW.status <> %[4]s THEN
            RAISE EXCEPTION '%[3]s %%: cannot leave status %%', NEW.code, OLD.status
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    NEW.name := btrim(NEW.name);
    RETURN NEW;
END;
$$;
CREATE TRIGGER %[2]s BEFORE INSERT OR UPDATE ON %[5]s
    FOR EACH ROW EXECUTE FUNCTION %[1]s.%[2]s();
COMMENT ON FUNCTION %[1]s.%[2]s() IS 'Keeps codes upper case and final states final';
`, t.schema, fn, t.name, final, t.qname())
	}
	return "triggers_" + t.name
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = quote(x)
	}
	return strings.Join(q, ", ")
}

func singular(s string) string {
	switch {
	case strings.HasSuffix(s, "ies"):
		return strings.TrimSuffix(s, "ies") + "y"
	case strings.HasSuffix(s, "sses"), strings.HasSuffix(s, "ches"):
		return strings.TrimSuffix(s, "es")
	case strings.HasSuffix(s, "s"):
		return strings.TrimSuffix(s, "s")
	}
	// "invoices_2" -> "invoice_2"
	if i := strings.LastIndexByte(s, '_'); i > 0 {
		if _, err := strconv.Atoi(s[i+1:]); err == nil {
			return singular(s[:i]) + s[i:]
		}
	}
	return s
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func permutation(r *rng, n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := r.intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}
