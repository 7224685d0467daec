package catalog

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Down returns SQL that turns a database whose schema is after back into
// before: it drops what the migration created (in dependency order),
// renames back what it renamed, re-creates what it dropped or replaced from
// the server's own definitions, and restores comments and grants. What
// cannot be undone from the schema alone (a dropped table's rows, a
// narrowed column's values, an added enum value, objects of kinds this
// package does not model) gets a "-- WARNING:" comment where it belongs,
// and is returned in warnings too: never a silent gap.
func Down(before, after *Snapshot) (sql string, warnings []string) {
	d := &down{a: before, b: after, schemaName: map[uint32]string{}}
	// Schemas are renamed back first; after that the rest of the
	// "after" snapshot reads with the old schema names.
	d.section("Rename back the schemas the up file renamed")
	renamed := map[string]string{}
	for _, oid := range sortedKeys(after.Schemas, false) {
		sc := after.Schemas[oid]
		d.schemaName[oid] = sc.Name
		if old := before.Schemas[oid]; old != nil && old.Name != sc.Name {
			d.stmt("ALTER SCHEMA %s RENAME TO %s", sc.Name, old.Name)
			d.schemaName[oid] = old.Name
			renamed[sc.Name] = old.Name
		}
	}
	if len(renamed) > 0 {
		d.b = after.withSchemas(renamed)
	}
	d.drops()
	d.renames()
	d.dropSchemas()
	d.creates()
	d.comments()
	d.grants()
	d.others()
	var out strings.Builder
	out.WriteString("-- Written by dbinit generate-down from the catalog before and after the up file.\n")
	if len(d.warnings) > 0 {
		fmt.Fprintf(&out, "-- %d thing(s) cannot be undone from the schema alone: see the WARNING lines.\n", len(d.warnings))
	}
	out.WriteString("SET check_function_bodies = false;\n")
	out.WriteString(d.sql.String())
	return out.String(), d.warnings
}

type down struct {
	a, b       *Snapshot
	sql        strings.Builder
	pending    string // the title of the part whose first line is not written yet
	warnings   []string
	schemaName map[uint32]string // schema OID -> its current name, as the down file renames schemas back
	recreate   struct {
		views     map[uint32]bool // dropped in phase 1 to be created again (definition change)
		functions map[uint32]bool
		triggers  map[uint32]bool
		policies  map[uint32]bool
		indexes   map[uint32]bool
	}
}

// section starts a part of the file; its title is written with the
// part's first line, so empty parts leave nothing.
func (d *down) section(title string) { d.pending = title }

func (d *down) header() {
	if d.pending != "" {
		fmt.Fprintf(&d.sql, "\n-- %s\n", d.pending)
		d.pending = ""
	}
}

func (d *down) stmt(format string, args ...any) {
	d.header()
	fmt.Fprintf(&d.sql, format, args...)
	d.sql.WriteString(";\n")
}

func (d *down) raw(sql string) {
	d.header()
	d.sql.WriteString(sql)
}

func (d *down) warn(format string, args ...any) {
	d.header()
	msg := fmt.Sprintf(format, args...)
	d.warnings = append(d.warnings, msg)
	for _, l := range strings.Split(msg, "\n") {
		fmt.Fprintf(&d.sql, "-- WARNING: %s\n", l)
	}
}

// sortedKeys returns the keys of m in increasing (or, with desc, decreasing)
// OID order: creation order, near enough for dependencies.
func sortedKeys[V any](m map[uint32]V, desc bool) []uint32 {
	keys := slices.Sorted(maps.Keys(m))
	if desc {
		slices.Reverse(keys)
	}
	return keys
}

// relName is a relation's name in after, with its schema as the down file
// has renamed it so far.
func (d *down) cur(r *Relation) string {
	if n, ok := d.schemaName[r.SchemaOID]; ok {
		return n + "." + r.Name
	}
	return r.QName()
}

func (d *down) curRel(oid uint32) string {
	if r := d.b.rel(oid); r != nil {
		return d.cur(r)
	}
	return d.a.relName(oid)
}

func (s *Snapshot) rel(oid uint32) *Relation { return s.Relations[oid] }

// inA reports whether the relation oid exists before the migration (it
// survives the down).
func (d *down) inA(oid uint32) bool { _, ok := d.a.Relations[oid]; return ok }

// drops removes what the migration created, and what it changed in ways
// that are undone by creating the object again.
func (d *down) drops() {
	a, b := d.a, d.b
	d.recreate.views, d.recreate.functions = map[uint32]bool{}, map[uint32]bool{}
	d.recreate.triggers, d.recreate.policies, d.recreate.indexes = map[uint32]bool{}, map[uint32]bool{}, map[uint32]bool{}
	d.section("Drop what the up file created")
	for _, oid := range sortedKeys(b.Policies, true) {
		p, old := b.Policies[oid], a.Policies[oid]
		if !d.inA(p.Table) {
			continue
		}
		if old == nil || old.Command != p.Command || old.Permissive != p.Permissive {
			d.stmt("DROP POLICY %s ON %s", p.Name, d.curRel(p.Table))
			if old != nil {
				d.recreate.policies[oid] = true
			}
		}
	}
	for _, oid := range sortedKeys(b.Triggers, true) {
		t, old := b.Triggers[oid], a.Triggers[oid]
		if !d.inA(t.Table) {
			continue
		}
		if old == nil || renamedDef(old.Def, old.Name, t.Name) != t.Def {
			d.stmt("DROP TRIGGER %s ON %s", t.Name, d.curRel(t.Table))
			if old != nil {
				d.recreate.triggers[oid] = true
			}
		}
	}
	for _, oid := range sortedKeys(b.Relations, true) {
		r, old := b.Relations[oid], a.Relations[oid]
		if r.Kind != 'v' && r.Kind != 'm' {
			continue
		}
		if old == nil || old.ViewDef != r.ViewDef && !prefixColumns(r.Columns, old.Columns) || old.Kind != r.Kind {
			d.stmt("DROP %s %s", strings.ToUpper(kindWord(r.Kind)), d.cur(r))
			if old != nil {
				d.recreate.views[oid] = true
			}
		}
	}
	// Foreign keys first: they may reference a key dropped after them.
	cons := sortedKeys(b.Constraints, true)
	slices.SortStableFunc(cons, func(x, y uint32) int {
		return cmp.Compare(boolInt(b.Constraints[x].Kind != 'f'), boolInt(b.Constraints[y].Kind != 'f'))
	})
	for _, oid := range cons {
		c := b.Constraints[oid]
		if a.Constraints[oid] != nil {
			continue
		}
		switch {
		case c.Table != 0 && d.inA(c.Table):
			d.stmt("ALTER TABLE %s DROP CONSTRAINT %s", d.curRel(c.Table), c.Name)
		case c.Domain != 0 && a.Types[c.Domain] != nil:
			d.stmt("ALTER DOMAIN %s DROP CONSTRAINT %s", b.Types[c.Domain].Name, c.Name)
		}
	}
	for _, oid := range sortedKeys(b.Indexes, true) {
		ix, old := b.Indexes[oid], a.Indexes[oid]
		if !d.inA(ix.Table) {
			continue
		}
		if old == nil || renamedDef(old.Def, old.Name, ix.Name) != ix.Def {
			d.stmt("DROP INDEX %s.%s", ix.Schema, ix.Name)
			if old != nil {
				d.recreate.indexes[oid] = true
			}
		}
	}
	for _, oid := range sortedKeys(b.Relations, false) {
		r, old := b.Relations[oid], a.Relations[oid]
		if old == nil || r.Kind != 'r' {
			continue
		}
		for _, c := range r.Columns {
			if findColumn(old.Columns, c.Num) == nil {
				d.stmt("ALTER TABLE %s DROP COLUMN %s", d.cur(r), c.Name)
			}
		}
	}
	for _, oid := range sortedKeys(b.Relations, true) {
		if r := b.Relations[oid]; a.Relations[oid] == nil && r.Kind == 'r' {
			d.stmt("DROP TABLE %s", d.cur(r))
		}
	}
	for _, oid := range sortedKeys(b.Functions, true) {
		f, old := b.Functions[oid], a.Functions[oid]
		if old == nil || old.Result != f.Result || old.Kind != f.Kind {
			d.stmt("DROP %s %s", routine(f.Kind), f.Signature)
			if old != nil {
				d.recreate.functions[oid] = true
			}
		}
	}
	for _, oid := range sortedKeys(b.Relations, true) {
		r := b.Relations[oid]
		if a.Relations[oid] != nil || r.Kind != 'S' || d.ownerGone(r) {
			continue
		}
		d.stmt("DROP SEQUENCE %s", d.cur(r))
	}
	for _, oid := range sortedKeys(b.Types, true) {
		if t := b.Types[oid]; a.Types[oid] == nil {
			if t.Kind == 'd' {
				d.stmt("DROP DOMAIN %s", t.Name)
			} else {
				d.stmt("DROP TYPE %s", t.Name)
			}
		}
	}
}

// dropSchemas drops the schemas and extensions the migration created,
// once the objects it moved into them are back where they were.
func (d *down) dropSchemas() {
	a, b := d.a, d.b
	d.section("Drop the schemas and extensions the up file created")
	for _, oid := range sortedKeys(b.Schemas, true) {
		if a.Schemas[oid] == nil {
			d.stmt("DROP SCHEMA %s", b.Schemas[oid].Name)
		}
	}
	for _, oid := range sortedKeys(b.Extensions, true) {
		if a.Extensions[oid] == nil {
			d.stmt("DROP EXTENSION %s", b.Extensions[oid].Name)
		}
	}
}

// ownerGone reports whether a sequence the migration created is owned by a
// table or column the down file drops, which takes the sequence with it.
func (d *down) ownerGone(seq *Relation) bool {
	if seq.OwnedBy == "" {
		return false
	}
	for oid, r := range d.b.Relations {
		if !strings.HasPrefix(seq.OwnedBy, r.QName()+".") {
			continue
		}
		old := d.a.Relations[oid]
		if old == nil {
			return true
		}
		col := strings.TrimPrefix(seq.OwnedBy, r.QName()+".")
		for _, c := range r.Columns {
			if c.Name == col {
				return findColumn(old.Columns, c.Num) == nil
			}
		}
	}
	return false
}

// renames puts back the names, types and settings of objects both
// snapshots have.
func (d *down) renames() {
	a, b := d.a, d.b
	d.section("Rename back and restore what the up file altered")
	for _, oid := range sortedKeys(b.Types, false) {
		t, old := b.Types[oid], a.Types[oid]
		if old == nil {
			continue
		}
		name := d.schemaName[t.SchemaOID] + "." + t.Bare
		if old.Bare != t.Bare {
			d.stmt("ALTER TYPE %s RENAME TO %s", name, old.Bare)
			name = d.schemaName[t.SchemaOID] + "." + old.Bare
		}
		switch t.Kind {
		case 'e':
			for _, l := range t.Labels {
				switch o := findLabel(old.Labels, l.OID); {
				case o == nil:
					d.warn("the up file added the value %s to the enum %s: PostgreSQL cannot drop an enum value; rows may use it. Re-create the type by hand if it must go", quoteLiteral(l.Label), old.Name)
				case o.Label != l.Label:
					d.stmt("ALTER TYPE %s RENAME VALUE %s TO %s", name, quoteLiteral(l.Label), quoteLiteral(o.Label))
				}
			}
		case 'd':
			if old.Default != t.Default {
				if old.Default == "" {
					d.stmt("ALTER DOMAIN %s DROP DEFAULT", name)
				} else {
					d.stmt("ALTER DOMAIN %s SET DEFAULT %s", name, old.Default)
				}
			}
			if old.NotNull != t.NotNull {
				d.stmt("ALTER DOMAIN %s %s NOT NULL", name, setDrop(old.NotNull))
			}
			if old.Base != t.Base {
				d.warn("the up file changed the base type of the domain %s from %s to %s: re-create it by hand", old.Name, old.Base, t.Base)
			}
		case 'c':
			if columnList(old.Attrs) != columnList(t.Attrs) {
				d.warn("the up file changed the attributes of the composite type %s (%s, now %s): restore them by hand with ALTER TYPE ... ADD/DROP/ALTER ATTRIBUTE", old.Name, columnList(old.Attrs), columnList(t.Attrs))
			}
		}
	}
	// Tables and views first: a table moved to another schema takes the
	// sequences it owns with it.
	moved := map[uint32]string{} // table OID -> the schema it is moved back to
	for _, oid := range sortedKeys(b.Relations, false) {
		r, old := b.Relations[oid], a.Relations[oid]
		if old == nil || d.recreate.views[oid] || r.Kind == 'S' {
			continue
		}
		what := map[byte]string{'r': "TABLE", 'v': "VIEW", 'm': "MATERIALIZED VIEW"}[r.Kind]
		if old.SchemaOID != r.SchemaOID {
			d.stmt("ALTER %s %s SET SCHEMA %s", what, d.cur(r), old.Schema)
			moved[oid] = old.Schema
		}
		if old.Name != r.Name {
			d.stmt("ALTER %s %s.%s RENAME TO %s", what, old.Schema, r.Name, old.Name)
		}
		if r.Kind == 'r' {
			name := old.QName()
			d.alterColumns(name, old, r)
			if old.RLS != r.RLS {
				d.stmt("ALTER TABLE %s %s ROW LEVEL SECURITY", name, map[bool]string{true: "ENABLE", false: "DISABLE"}[old.RLS])
			}
			if old.ForceRLS != r.ForceRLS {
				d.stmt("ALTER TABLE %s %s ROW LEVEL SECURITY", name, map[bool]string{true: "FORCE", false: "NO FORCE"}[old.ForceRLS])
			}
		}
	}
	for _, oid := range sortedKeys(b.Relations, false) {
		r, old := b.Relations[oid], a.Relations[oid]
		if old == nil || r.Kind != 'S' {
			continue
		}
		schema := d.schemaName[r.SchemaOID]
		if to, ok := moved[r.OwnedByRel]; ok {
			schema = to
		}
		if schema != old.Schema {
			d.stmt("ALTER SEQUENCE %s.%s SET SCHEMA %s", schema, r.Name, old.Schema)
		}
		if old.Name != r.Name {
			d.stmt("ALTER SEQUENCE %s.%s RENAME TO %s", old.Schema, r.Name, old.Name)
		}
		name := old.QName()
		if q, o := r.Seq, old.Seq; *q != *o {
			cycle := "NO CYCLE"
			if o.Cycle {
				cycle = "CYCLE"
			}
			d.stmt("ALTER SEQUENCE %s AS %s INCREMENT BY %d MINVALUE %d MAXVALUE %d START WITH %d CACHE %d %s", name, o.Type, o.Increment, o.Min, o.Max, o.Start, o.Cache, cycle)
		}
		if old.OwnedByRel != r.OwnedByRel || old.OwnedByCol != r.OwnedByCol {
			owner := old.OwnedBy
			if owner == "" {
				owner = "NONE"
			}
			d.stmt("ALTER SEQUENCE %s OWNED BY %s", name, owner)
		}
	}
	for _, oid := range sortedKeys(b.Indexes, false) {
		ix, old := b.Indexes[oid], a.Indexes[oid]
		if old != nil && !d.recreate.indexes[oid] && old.Name != ix.Name {
			d.stmt("ALTER INDEX %s.%s RENAME TO %s", old.Schema, ix.Name, old.Name)
		}
	}
	for _, oid := range sortedKeys(b.Constraints, false) {
		c, old := b.Constraints[oid], a.Constraints[oid]
		if old == nil || old.Name == c.Name {
			continue
		}
		if c.Table != 0 {
			d.stmt("ALTER TABLE %s RENAME CONSTRAINT %s TO %s", a.relName(c.Table), c.Name, old.Name)
		} else if t := a.Types[c.Domain]; t != nil {
			d.stmt("ALTER DOMAIN %s RENAME CONSTRAINT %s TO %s", t.Name, c.Name, old.Name)
		}
	}
	for _, oid := range sortedKeys(b.Triggers, false) {
		t, old := b.Triggers[oid], a.Triggers[oid]
		if old != nil && !d.recreate.triggers[oid] && old.Name != t.Name {
			d.stmt("ALTER TRIGGER %s ON %s RENAME TO %s", t.Name, a.relName(t.Table), old.Name)
		}
	}
	for _, oid := range sortedKeys(b.Functions, false) {
		f, old := b.Functions[oid], a.Functions[oid]
		if old == nil || d.recreate.functions[oid] {
			continue
		}
		sig := d.schemaName[f.SchemaOID] + "." + f.Bare + "(" + f.Args + ")"
		if old.SchemaOID != f.SchemaOID {
			d.stmt("ALTER %s %s SET SCHEMA %s", routine(f.Kind), sig, old.Schema)
			sig = old.Schema + "." + f.Bare + "(" + f.Args + ")"
		}
		if old.Bare != f.Bare {
			d.stmt("ALTER %s %s RENAME TO %s", routine(f.Kind), sig, old.Bare)
		}
		if strings.TrimSpace(old.Def) != strings.TrimSpace(renamedDef(f.Def, f.Signature, old.Signature)) {
			d.raw(strings.TrimSpace(old.Def) + ";\n")
		}
	}
	for _, oid := range sortedKeys(b.Policies, false) {
		p, old := b.Policies[oid], a.Policies[oid]
		if old == nil || d.recreate.policies[oid] {
			continue
		}
		table := a.relName(p.Table)
		if old.Name != p.Name {
			d.stmt("ALTER POLICY %s ON %s RENAME TO %s", p.Name, table, old.Name)
		}
		if old.Roles != p.Roles || old.Using != p.Using || old.Check != p.Check {
			alter := fmt.Sprintf("ALTER POLICY %s ON %s TO %s", old.Name, table, old.Roles)
			if old.Using != "" {
				alter += " USING (" + old.Using + ")"
			}
			if old.Check != "" {
				alter += " WITH CHECK (" + old.Check + ")"
			}
			d.stmt("%s", alter)
		}
	}
}

// alterColumns restores the columns a table had before: names, types,
// defaults, nullability, identity.
func (d *down) alterColumns(table string, old, r *Relation) {
	for _, c := range r.Columns {
		o := findColumn(old.Columns, c.Num)
		if o == nil {
			continue // dropped above
		}
		if o.Name != c.Name {
			d.stmt("ALTER TABLE %s RENAME COLUMN %s TO %s", table, c.Name, o.Name)
		}
		col := o.Name
		if o.Identity != c.Identity && c.Identity != 0 {
			d.stmt("ALTER TABLE %s ALTER COLUMN %s DROP IDENTITY", table, col)
		}
		if o.Generated != c.Generated {
			d.warn("the up file changed whether %s.%s is a generated column: restore it by hand", table, col)
		}
		if o.Type != c.Type || o.Collation != c.Collation {
			collate := ""
			if o.Collation != "" {
				collate = " COLLATE " + o.Collation
			}
			if c.Default != "" && c.Identity == 0 && c.Generated == 0 {
				// A default of the new type may not cast back.
				d.stmt("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT", table, col)
				c.Default = ""
			}
			d.stmt("ALTER TABLE %s ALTER COLUMN %s TYPE %s%s USING %s::%s", table, col, o.Type, collate, col, o.Type)
			d.warn("%s.%s goes back from %s to %s with a cast: values the old type cannot hold make the down file fail, and precision the new type added is lost", table, col, c.Type, o.Type)
		}
		if o.Default != c.Default && o.Identity == 0 && o.Generated == 0 {
			if o.Default == "" {
				d.stmt("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT", table, col)
			} else {
				d.stmt("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", table, col, o.Default)
			}
		}
		if o.NotNull != c.NotNull && o.Identity == 0 && !(o.NotNull && c.Identity != 0) {
			d.stmt("ALTER TABLE %s ALTER COLUMN %s %s NOT NULL", table, col, setDrop(o.NotNull))
		}
		if o.Identity != c.Identity && o.Identity != 0 {
			d.stmt("ALTER TABLE %s ALTER COLUMN %s ADD GENERATED %s AS IDENTITY", table, col, identityWord(o.Identity))
		}
	}
}

// creates makes again what the migration dropped or replaced, from the
// definitions the "before" snapshot has.
func (d *down) creates() {
	a, b := d.a, d.b
	d.section("Create again what the up file dropped or replaced")
	for _, oid := range sortedKeys(a.Extensions, false) {
		if b.Extensions[oid] == nil {
			e := a.Extensions[oid]
			d.stmt("CREATE EXTENSION IF NOT EXISTS %s WITH SCHEMA %s VERSION '%s'", e.Name, e.Schema, e.Version)
		}
	}
	for _, oid := range sortedKeys(a.Schemas, false) {
		if b.Schemas[oid] == nil {
			d.stmt("CREATE SCHEMA %s", a.Schemas[oid].Name)
		}
	}
	for _, oid := range sortedKeys(a.Types, false) {
		if b.Types[oid] != nil {
			continue
		}
		t := a.Types[oid]
		switch t.Kind {
		case 'e':
			var labels []string
			for _, l := range t.Labels {
				labels = append(labels, quoteLiteral(l.Label))
			}
			d.stmt("CREATE TYPE %s AS ENUM (%s)", t.Name, strings.Join(labels, ", "))
		case 'c':
			d.stmt("CREATE TYPE %s AS (%s)", t.Name, columnList(t.Attrs))
		case 'd':
			def := fmt.Sprintf("CREATE DOMAIN %s AS %s", t.Name, t.Base)
			if t.Default != "" {
				def += " DEFAULT " + t.Default
			}
			if t.NotNull {
				def += " NOT NULL"
			}
			for _, coid := range sortedKeys(a.Constraints, false) {
				if c := a.Constraints[coid]; c.Domain == oid {
					def += " CONSTRAINT " + c.Name + " " + c.Def
				}
			}
			d.stmt("%s", def)
		}
	}
	for _, oid := range sortedKeys(a.Relations, false) {
		if r := a.Relations[oid]; r.Kind == 'S' && b.Relations[oid] == nil {
			q := r.Seq
			cycle := "NO CYCLE"
			if q.Cycle {
				cycle = "CYCLE"
			}
			d.stmt("CREATE SEQUENCE %s AS %s INCREMENT BY %d MINVALUE %d MAXVALUE %d START WITH %d CACHE %d %s", r.QName(), q.Type, q.Increment, q.Min, q.Max, q.Start, q.Cache, cycle)
			d.warn("the sequence %s is created again at its start value; set it past the values in use: SELECT setval('%s', (SELECT max(...) FROM ...))", r.QName(), strings.ReplaceAll(r.QName(), "'", "''"))
		}
	}
	for _, oid := range sortedKeys(a.Functions, false) {
		if b.Functions[oid] == nil || d.recreate.functions[oid] {
			d.raw(strings.TrimSpace(a.Functions[oid].Def) + ";\n")
		}
	}
	for _, oid := range sortedKeys(a.Relations, false) {
		r := a.Relations[oid]
		if r.Kind != 'r' || b.Relations[oid] != nil {
			continue
		}
		var cols []string
		for _, c := range r.Columns {
			cols = append(cols, "    "+c.Name+" "+columnDef(c))
		}
		d.stmt("CREATE TABLE %s (\n%s\n)", r.QName(), strings.Join(cols, ",\n"))
		d.warn("the up file dropped the table %s: this creates it again, empty; its rows are gone (restore them from a backup, or a dbinit snapshot)", r.QName())
		if r.RLS {
			d.stmt("ALTER TABLE %s ENABLE ROW LEVEL SECURITY", r.QName())
		}
		if r.ForceRLS {
			d.stmt("ALTER TABLE %s FORCE ROW LEVEL SECURITY", r.QName())
		}
	}
	for _, oid := range sortedKeys(a.Relations, false) {
		r, now := a.Relations[oid], b.Relations[oid]
		if r.Kind != 'r' || now == nil {
			continue
		}
		for _, c := range r.Columns {
			if findColumn(now.Columns, c.Num) != nil {
				continue
			}
			d.stmt("ALTER TABLE %s ADD COLUMN %s %s", r.QName(), c.Name, columnDef(c))
			d.warn("the up file dropped the column %s.%s: this adds it again at the end of the table, with its default or NULL; its values are gone", r.QName(), c.Name)
		}
	}
	for _, oid := range sortedKeys(a.Relations, false) {
		if r := a.Relations[oid]; r.Kind == 'S' && b.Relations[oid] == nil && r.OwnedBy != "" {
			d.stmt("ALTER SEQUENCE %s OWNED BY %s", r.QName(), r.OwnedBy)
		}
	}
	// Keys before the foreign keys that reference them.
	cons := sortedKeys(a.Constraints, false)
	slices.SortStableFunc(cons, func(x, y uint32) int {
		return cmp.Compare(boolInt(a.Constraints[x].Kind == 'f'), boolInt(a.Constraints[y].Kind == 'f'))
	})
	for _, oid := range cons {
		c := a.Constraints[oid]
		if b.Constraints[oid] != nil {
			continue
		}
		switch {
		case c.Table != 0:
			d.stmt("ALTER TABLE %s ADD CONSTRAINT %s %s", a.relName(c.Table), c.Name, c.Def)
		case c.Domain != 0 && b.Types[c.Domain] != nil:
			d.stmt("ALTER DOMAIN %s ADD CONSTRAINT %s %s", a.Types[c.Domain].Name, c.Name, c.Def)
		}
	}
	for _, oid := range sortedKeys(a.Indexes, false) {
		if b.Indexes[oid] == nil || d.recreate.indexes[oid] {
			d.stmt("%s", a.Indexes[oid].Def)
		}
	}
	for _, oid := range sortedKeys(a.Relations, false) {
		r, now := a.Relations[oid], b.Relations[oid]
		if r.Kind != 'v' && r.Kind != 'm' {
			continue
		}
		def := strings.TrimSuffix(strings.TrimSpace(r.ViewDef), ";")
		switch {
		case now == nil || d.recreate.views[oid]:
			d.stmt("CREATE %s %s AS\n%s", strings.ToUpper(kindWord(r.Kind)), r.QName(), def)
		case now.ViewDef != r.ViewDef:
			d.stmt("CREATE OR REPLACE VIEW %s AS\n%s", r.QName(), def)
		}
	}
	for _, oid := range sortedKeys(a.Triggers, false) {
		if b.Triggers[oid] == nil || d.recreate.triggers[oid] {
			d.stmt("%s", a.Triggers[oid].Def)
		}
	}
	for _, oid := range sortedKeys(a.Policies, false) {
		if b.Policies[oid] != nil && !d.recreate.policies[oid] {
			continue
		}
		p := a.Policies[oid]
		kind := "PERMISSIVE"
		if !p.Permissive {
			kind = "RESTRICTIVE"
		}
		def := fmt.Sprintf("CREATE POLICY %s ON %s AS %s FOR %s TO %s", p.Name, a.relName(p.Table), kind, p.Command, p.Roles)
		if p.Using != "" {
			def += " USING (" + p.Using + ")"
		}
		if p.Check != "" {
			def += " WITH CHECK (" + p.Check + ")"
		}
		d.stmt("%s", def)
	}
}

// exists reports whether the object k belongs to exists before the
// migration.
func (s *Snapshot) exists(k ObjectKey) bool {
	for _, m := range []bool{s.Schemas[k.OID] != nil, s.Relations[k.OID] != nil, s.Types[k.OID] != nil, s.Functions[k.OID] != nil,
		s.Indexes[k.OID] != nil, s.Constraints[k.OID] != nil, s.Triggers[k.OID] != nil, s.Policies[k.OID] != nil, s.Extensions[k.OID] != nil} {
		if m {
			if k.Sub > 0 {
				r := s.Relations[k.OID]
				return r != nil && findColumn(r.Columns, int16(k.Sub)) != nil
			}
			return true
		}
	}
	return false
}

func (d *down) comments() {
	a, b := d.a, d.b
	var lines []string
	for k, c := range a.Comments {
		if now := b.Comments[k]; now == nil || now.Text != c.Text {
			lines = append(lines, fmt.Sprintf("COMMENT ON %s IS %s;\n", commentTarget(c), quoteLiteral(c.Text)))
		}
	}
	for k := range b.Comments {
		if a.Comments[k] == nil && a.exists(k) {
			// Named as before the migration: the down file renamed it back.
			if target := a.identify(k); target != "" {
				lines = append(lines, fmt.Sprintf("COMMENT ON %s IS NULL;\n", target))
			}
		}
	}
	if len(lines) > 0 {
		d.section("Comments as they were")
		slices.Sort(lines)
		for _, l := range lines {
			d.raw(l)
		}
	}
}

// identify names object k as COMMENT ON expects it, by the "before"
// snapshot's names.
func (s *Snapshot) identify(k ObjectKey) string {
	switch {
	case s.Schemas[k.OID] != nil:
		return "SCHEMA " + s.Schemas[k.OID].Name
	case s.Relations[k.OID] != nil:
		r := s.Relations[k.OID]
		if k.Sub > 0 {
			if c := findColumn(r.Columns, int16(k.Sub)); c != nil {
				return "COLUMN " + r.QName() + "." + c.Name
			}
			return ""
		}
		return strings.ToUpper(kindWord(r.Kind)) + " " + r.QName()
	case s.Types[k.OID] != nil:
		if s.Types[k.OID].Kind == 'd' {
			return "DOMAIN " + s.Types[k.OID].Name
		}
		return "TYPE " + s.Types[k.OID].Name
	case s.Functions[k.OID] != nil:
		return strings.ToUpper(routine(s.Functions[k.OID].Kind)) + " " + s.Functions[k.OID].Signature
	case s.Indexes[k.OID] != nil:
		return "INDEX " + s.Indexes[k.OID].Schema + "." + s.Indexes[k.OID].Name
	case s.Constraints[k.OID] != nil:
		c := s.Constraints[k.OID]
		if c.Table != 0 {
			return "CONSTRAINT " + c.Name + " ON " + s.relName(c.Table)
		}
		return "CONSTRAINT " + c.Name + " ON DOMAIN " + s.owner(c)[len("domain "):]
	case s.Triggers[k.OID] != nil:
		return "TRIGGER " + s.Triggers[k.OID].Name + " ON " + s.relName(s.Triggers[k.OID].Table)
	case s.Policies[k.OID] != nil:
		return "POLICY " + s.Policies[k.OID].Name + " ON " + s.relName(s.Policies[k.OID].Table)
	case s.Extensions[k.OID] != nil:
		return "EXTENSION " + s.Extensions[k.OID].Name
	}
	return ""
}

// commentTarget is COMMENT ON's object for a comment of the "before"
// snapshot.
func commentTarget(c *Comment) string {
	return strings.ToUpper(commentKinds[c.Kind]) + " " + commentIdentity(c)
}

var commentKinds = map[string]string{
	"table": "table", "view": "view", "materialized view": "materialized view", "sequence": "sequence", "index": "index",
	"schema": "schema", "type": "type", "domain": "domain", "function": "function", "procedure": "procedure",
	"table column": "column", "view column": "column", "materialized view column": "column",
	"table constraint": "constraint", "domain constraint": "constraint", "trigger": "trigger", "policy": "policy", "extension": "extension",
}

// commentIdentity turns pg_identify_object's "name on table" identities
// into COMMENT ON's "name ON table" (and "ON DOMAIN" for domains).
func commentIdentity(c *Comment) string {
	switch c.Kind {
	case "table constraint", "trigger", "policy":
		name, on, _ := strings.Cut(c.Identity, " on ")
		return name + " ON " + on
	case "domain constraint":
		name, on, _ := strings.Cut(c.Identity, " on ")
		return name + " ON DOMAIN " + on
	}
	return c.Identity
}

func (d *down) grants() {
	a, b := d.a, d.b
	var lines []string
	for g := range a.Grants {
		if !b.Grants[g] {
			opt := ""
			if g.Grantable {
				opt = " WITH GRANT OPTION"
			}
			lines = append(lines, fmt.Sprintf("GRANT %s ON %s %s TO %s%s;\n", g.Privilege, g.Kind, g.Identity, g.Grantee, opt))
		}
	}
	for g := range b.Grants {
		if !a.Grants[g] && a.exists(g.Object) {
			ident := g.Identity
			if t := a.identify(g.Object); t != "" {
				_, ident, _ = strings.Cut(t, " ")
				if g.Kind == "FUNCTION" || g.Kind == "PROCEDURE" || g.Kind == "TABLE" {
					_, ident, _ = cutKind(t)
				}
			}
			lines = append(lines, fmt.Sprintf("REVOKE %s ON %s %s FROM %s;\n", g.Privilege, g.Kind, ident, g.Grantee))
		}
	}
	if len(lines) > 0 {
		d.section("Privileges as they were")
		slices.Sort(lines)
		for _, l := range lines {
			d.raw(l)
		}
	}
}

// cutKind splits "MATERIALIZED VIEW x" or "TABLE x" after its kind words.
func cutKind(t string) (kind, ident string, ok bool) {
	for _, k := range []string{"MATERIALIZED VIEW ", "TABLE ", "VIEW ", "SEQUENCE ", "FUNCTION ", "PROCEDURE "} {
		if strings.HasPrefix(t, k) {
			return strings.TrimSpace(k), t[len(k):], true
		}
	}
	return "", t, false
}

func (d *down) others() {
	var added, removed []string
	for k := range d.b.Others {
		if _, ok := d.a.Others[k]; !ok {
			added = append(added, k)
		}
	}
	for k := range d.a.Others {
		if _, ok := d.b.Others[k]; !ok {
			removed = append(removed, k)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	if len(added)+len(removed) == 0 {
		return
	}
	d.section("Objects generate-down does not handle")
	for _, k := range added {
		d.warn("the up file created %s, which generate-down cannot drop: drop it here by hand", k)
	}
	for _, k := range removed {
		d.warn("the up file dropped %s, which generate-down cannot create again: create it here by hand", k)
	}
}

func findColumn(cols []Column, num int16) *Column {
	for i := range cols {
		if cols[i].Num == num {
			return &cols[i]
		}
	}
	return nil
}

func findLabel(labels []EnumLabel, oid uint32) *EnumLabel {
	for i := range labels {
		if labels[i].OID == oid {
			return &labels[i]
		}
	}
	return nil
}

// prefixColumns reports whether before's columns begin with now's, which
// CREATE OR REPLACE VIEW needs to go from now back to before.
func prefixColumns(now, before []Column) bool {
	if len(now) > len(before) {
		return false
	}
	for i := range now {
		if now[i].Name != before[i].Name || now[i].Type != before[i].Type {
			return false
		}
	}
	return true
}

// renamedDef is def with the object's old name replaced by its new one,
// to tell a rename from a change of definition.
func renamedDef(def, old, now string) string {
	if old == now {
		return def
	}
	return strings.Replace(def, old, now, 1)
}

func routine(kind byte) string {
	if kind == 'p' {
		return "PROCEDURE"
	}
	return "FUNCTION"
}

func setDrop(set bool) string {
	if set {
		return "SET"
	}
	return "DROP"
}

func identityWord(k byte) string {
	if k == 'a' {
		return "ALWAYS"
	}
	return "BY DEFAULT"
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
