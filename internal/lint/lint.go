// Package lint checks migrations for changes that are unsafe on a live
// production database: locks that stall the application, table rewrites,
// changes that break the release still running. It reads statements with
// PostgreSQL's own grammar (libpg_query, compiled to WebAssembly and run in
// pure Go by wazero, so the binary stays static), never with regular
// expressions over text: keywords inside strings, comments, dollar-quoted
// bodies and identifiers are not statements.
//
// The parser is loaded on the first Check, not when the package is
// imported: commands that do not lint do not pay for it.
package lint

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/wasilibs/go-pgquery/parser"

	"github.com/savvi-studio/dbinit/internal/sqlsplit"
	"github.com/savvi-studio/dbinit/migrate"
)

// Severity of a rule: an error fails `dbinit lint` (exit 8); a warning is
// reported only.
type Severity string

// Severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Rule is one check.
type Rule struct {
	Name     string
	Severity Severity
	Summary  string // one line, for `dbinit lint --help` and docs/lint.md
}

// Rules are every rule, in the order docs/lint.md explains them.
var Rules = []Rule{
	{"index-not-concurrent", Error, "CREATE INDEX (or a UNIQUE/PRIMARY KEY constraint that builds one) on an existing table without CONCURRENTLY"},
	{"add-column-not-null", Error, "ADD COLUMN ... NOT NULL without a DEFAULT on an existing table"},
	{"set-not-null", Warning, "ALTER COLUMN ... SET NOT NULL on an existing table"},
	{"constraint-not-valid", Warning, "ADD CONSTRAINT (FOREIGN KEY or CHECK) on an existing table without NOT VALID"},
	{"column-type-rewrite", Warning, "ALTER COLUMN ... TYPE on an existing table"},
	{"volatile-default", Error, "ADD COLUMN with a volatile DEFAULT, an identity or a stored generated column on an existing table"},
	{"drop-object", Warning, "DROP TABLE, DROP VIEW or DROP COLUMN of an existing object"},
	{"rename", Warning, "RENAME of an existing table, view or column"},
	{"concurrently-in-transaction", Error, "CONCURRENTLY in a file that runs in a transaction"},
	{"vacuum-full", Error, "VACUUM FULL or CLUSTER"},
	{"identifier-too-long", Error, "an identifier over 63 bytes, which PostgreSQL truncates"},
	{"missing-down", Warning, "a migration without a down file"},
	{"mixed-schema-and-data", Warning, "UPDATE or DELETE without WHERE in a file that also changes the schema"},
	{"parse", Warning, "a statement PostgreSQL 17's grammar cannot read (nothing else is checked in it)"},
	{"unknown-rule", Error, "dbinit:lint-ignore names a rule that does not exist"},
}

// RuleByName returns the rule called name.
func RuleByName(name string) (Rule, bool) {
	for _, r := range Rules {
		if r.Name == name {
			return r, true
		}
	}
	return Rule{}, false
}

// Finding is one rule firing on one statement.
type Finding struct {
	Path     string   `json:"file"`
	Line     int      `json:"line"`
	Col      int      `json:"col"`
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
}

func (f Finding) String() string {
	return fmt.Sprintf("%s:%d:%d %s %s", f.Path, f.Line, f.Col, f.Rule, f.Message)
}

// Check lints the given migrations of set (all of them when only is nil):
// their up files, in version order. Whether a table "already exists" is
// decided by the history order: a table the same file creates is new, any
// other exists.
func Check(set *migrate.Set, only func(*migrate.Migration) bool) []Finding {
	var out []Finding
	for _, m := range set.Migrations {
		if only != nil && !only(m) {
			continue
		}
		out = append(out, checkScript(m.Up, m)...)
	}
	slices.SortStableFunc(out, func(a, b Finding) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
	return out
}

// HasErrors reports whether a finding has error severity.
func HasErrors(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == Error })
}

// file is the state of one file's check.
type file struct {
	s        *migrate.Script
	created  map[string]bool // tables, views and indexes this file creates: "name" and "schema.name"
	findings []Finding
	schema   bool      // the file changes the schema
	dataless []Finding // UPDATE/DELETE without WHERE, reported when the file also changes the schema
	ignored  map[int][]string
}

func checkScript(s *migrate.Script, m *migrate.Migration) []Finding {
	f := &file{s: s, created: map[string]bool{}, ignored: map[int][]string{}}
	var fileIgnores []string
	for _, li := range s.LintIgnore {
		for _, r := range li.Rules {
			if _, ok := RuleByName(r); !ok {
				f.findings = append(f.findings, Finding{Path: s.Path, Line: li.Line, Col: 1, Rule: "unknown-rule", Severity: Error,
					Message: fmt.Sprintf("dbinit:lint-ignore %s: there is no such rule (dbinit help lint lists them)", r)})
			}
		}
		if li.File {
			fileIgnores = append(fileIgnores, li.Rules...)
		} else {
			f.ignored[li.Line] = append(f.ignored[li.Line], li.Rules...)
		}
	}
	if m.Down == nil && len(s.Statements) > 0 {
		f.add(1, 1, "missing-down", fmt.Sprintf("has no down file: reverting it means restoring a backup; write %s (dbinit generate-down %d writes one)",
			strings.TrimSuffix(s.File, ".sql")+"_down.sql", m.Version))
	}
	for i, st := range s.Statements {
		f.statement(i, st)
	}
	if f.schema {
		f.findings = append(f.findings, f.dataless...)
	}
	// Ignores: the whole file's, and those on the comment lines right
	// before a statement.
	out := f.findings[:0]
	for _, fd := range f.findings {
		if fd.Rule != "unknown-rule" && (slices.Contains(fileIgnores, fd.Rule) || f.ignoredAt(fd)) {
			continue
		}
		out = append(out, fd)
	}
	return out
}

// ignoredAt reports whether a lint-ignore line in the comments right
// before the finding's statement silences it.
func (f *file) ignoredAt(fd Finding) bool {
	for _, st := range f.s.Statements {
		first, _ := sqlsplit.Pos(f.s.SQL, st.Offset) // where its leading comments start
		last := st.Line + strings.Count(st.SQL(), "\n")
		if fd.Line < st.Line || fd.Line > last {
			continue
		}
		for line := first; line < st.Line; line++ {
			if slices.Contains(f.ignored[line], fd.Rule) {
				return true
			}
		}
		return false
	}
	return false
}

// add records a finding at a file position.
func (f *file) add(line, col int, rule, msg string) {
	r, _ := RuleByName(rule)
	f.findings = append(f.findings, Finding{Path: f.s.Path, Line: line, Col: col, Rule: rule, Severity: r.Severity, Message: msg})
}

// at returns the file position of byte offset off in statement st's SQL.
func (f *file) at(st migrate.Statement, off int) (int, int) {
	base := st.Offset + st.Start
	return sqlsplit.Pos(f.s.SQL, base+max(0, min(off, len(st.SQL()))))
}

func (f *file) statement(i int, st migrate.Statement) {
	sql := st.SQL()
	raw, err := parser.ParseToJSON(sql)
	if err != nil {
		line, col := f.at(st, 0)
		f.add(line, col, "parse", "PostgreSQL 17's grammar cannot read this statement ("+err.Error()+"); nothing else is checked in it")
		return
	}
	var tree struct {
		Stmts []struct {
			Stmt map[string]any `json:"stmt"`
		} `json:"stmts"`
	}
	if err := json.Unmarshal([]byte(raw), &tree); err != nil {
		return
	}
	for _, s := range tree.Stmts {
		for kind, node := range s.Stmt {
			f.node(i, st, kind, obj(node))
		}
	}
	// The parser truncates long identifiers as the server does; the text
	// still has them whole.
	for _, id := range sqlsplit.LongIdentifiers(sql) {
		f.fire(i, st, id.Offset, "identifier-too-long", "%q is %d bytes; PostgreSQL keeps the first 63 and silently uses the truncated name, so two long names can collide: shorten it",
			id.Name, len(id.Name))
	}
}

// Nodes of the JSON parse tree.

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func boolean(v any) bool {
	b, _ := v.(bool)
	return b
}

func num(v any) int {
	n, _ := v.(float64)
	return int(n)
}

// child returns the single-key node wrapper's inner object: {"ColumnDef":
// {...}} -> ("ColumnDef", {...}).
func child(v any) (string, map[string]any) {
	for k, inner := range obj(v) {
		return k, obj(inner)
	}
	return "", nil
}

// relName is a RangeVar's name as written, "schema.table" or "table".
func relName(rv map[string]any) string {
	if s := str(rv["schemaname"]); s != "" {
		return s + "." + str(rv["relname"])
	}
	return str(rv["relname"])
}

// isNew reports whether this file created the relation rv names.
func (f *file) isNew(rv map[string]any) bool {
	return f.created[strings.ToLower(relName(rv))] || f.created[strings.ToLower(str(rv["relname"]))]
}

func (f *file) create(rv map[string]any) {
	f.created[strings.ToLower(relName(rv))] = true
	f.created[strings.ToLower(str(rv["relname"]))] = true
}

// loc is the byte offset of node's "location" field, or 0.
func loc(node map[string]any) int {
	if v, ok := node["location"]; ok {
		return num(v)
	}
	return 0
}

func (f *file) fire(i int, st migrate.Statement, off int, rule, format string, args ...any) {
	line, col := f.at(st, off)
	f.add(line, col, rule, fmt.Sprintf(format, args...))
}

// dataKinds are statements that change data, not the schema.
var dataKinds = map[string]bool{"SelectStmt": true, "InsertStmt": true, "UpdateStmt": true, "DeleteStmt": true, "MergeStmt": true,
	"VariableSetStmt": true, "CopyStmt": true, "ExplainStmt": true, "DoStmt": true, "CallStmt": true, "NotifyStmt": true, "LockStmt": true}

func (f *file) node(i int, st migrate.Statement, kind string, n map[string]any) {
	if !dataKinds[kind] {
		f.schema = true
	}
	switch kind {
	case "CreateStmt", "CreateTableAsStmt":
		rv := obj(n["relation"])
		if kind == "CreateTableAsStmt" {
			rv = obj(obj(n["into"])["rel"])
		}
		f.create(rv)
	case "ViewStmt":
		f.create(obj(n["view"]))
	case "IndexStmt":
		rv := obj(n["relation"])
		concurrent := boolean(n["concurrent"])
		switch {
		case concurrent && !f.s.NoTransaction:
			f.fire(i, st, 0, "concurrently-in-transaction", "CREATE INDEX CONCURRENTLY cannot run in a transaction; put -- dbinit:no-transaction at the top of the file")
		case !concurrent && !f.isNew(rv):
			f.fire(i, st, 0, "index-not-concurrent",
				"CREATE INDEX on %s, which already exists, blocks every write to it until the index is built; use CREATE INDEX CONCURRENTLY, in a file of its own with -- dbinit:no-transaction",
				relName(rv))
		}
	case "DropStmt":
		if boolean(n["concurrent"]) && !f.s.NoTransaction {
			f.fire(i, st, 0, "concurrently-in-transaction", "DROP INDEX CONCURRENTLY cannot run in a transaction; put -- dbinit:no-transaction at the top of the file")
		}
		switch t := str(n["removeType"]); t {
		case "OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW":
			for _, o := range list(n["objects"]) {
				var parts []string
				for _, it := range list(obj(obj(o)["List"])["items"]) {
					_, s := child(it)
					parts = append(parts, str(s["sval"]))
				}
				name := strings.Join(parts, ".")
				if f.created[strings.ToLower(name)] {
					continue
				}
				f.fire(i, st, 0, "drop-object", "DROP %s %s: the release still running may read it; drop it in a later release, once no deployed code uses it",
					strings.ToLower(strings.TrimPrefix(t, "OBJECT_")), name)
			}
		}
	case "RenameStmt":
		rv := obj(n["relation"])
		if rv != nil && f.isNew(rv) {
			return
		}
		switch t := str(n["renameType"]); t {
		case "OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_COLUMN", "OBJECT_MATVIEW":
			what := strings.ToLower(strings.TrimPrefix(t, "OBJECT_"))
			old := relName(rv)
			if t == "OBJECT_COLUMN" {
				old += "." + str(n["subname"])
			}
			f.fire(i, st, 0, "rename", "renaming %s %s to %s breaks the release still running, which uses the old name; add the new name alongside (a view, a column filled by a trigger) and drop the old one in a later release",
				what, old, str(n["newname"]))
		}
	case "AlterTableStmt":
		rv := obj(n["relation"])
		existing := !f.isNew(rv)
		for _, c := range list(n["cmds"]) {
			_, cmd := child(c)
			f.alterCmd(i, st, rv, existing, cmd)
		}
	case "VacuumStmt":
		for _, o := range list(n["options"]) {
			_, d := child(o)
			if str(d["defname"]) == "full" {
				f.fire(i, st, 0, "vacuum-full", "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock, blocking reads and writes; use pg_repack, or plain VACUUM")
			}
		}
	case "ClusterStmt":
		f.fire(i, st, 0, "vacuum-full", "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock, blocking reads and writes; use pg_repack")
	case "ReindexStmt":
		for _, p := range list(n["params"]) {
			_, d := child(p)
			if str(d["defname"]) == "concurrently" && !f.s.NoTransaction {
				f.fire(i, st, 0, "concurrently-in-transaction", "REINDEX CONCURRENTLY cannot run in a transaction; put -- dbinit:no-transaction at the top of the file")
			}
		}
	case "UpdateStmt", "DeleteStmt":
		if n["whereClause"] == nil {
			verb := "UPDATE"
			if kind == "DeleteStmt" {
				verb = "DELETE"
			}
			line, col := f.at(st, 0)
			r, _ := RuleByName("mixed-schema-and-data")
			f.dataless = append(f.dataless, Finding{Path: f.s.Path, Line: line, Col: col, Rule: r.Name, Severity: r.Severity,
				Message: fmt.Sprintf("%s of every row of %s in a file that also changes the schema: the schema change waits for the data change under its locks, and reverting one reverts the other; put data changes in a file of their own", verb, relName(obj(n["relation"])))})
		}
	}
}

// volatileFuncs are functions whose value differs per row: a DEFAULT
// calling one makes ADD COLUMN rewrite the table.
var volatileFuncs = map[string]bool{"random": true, "gen_random_uuid": true, "uuid_generate_v1": true, "uuid_generate_v4": true, "uuidv4": true, "uuidv7": true,
	"clock_timestamp": true, "timeofday": true, "nextval": true, "setseed": true, "txid_current": true}

func (f *file) alterCmd(i int, st migrate.Statement, rv map[string]any, existing bool, cmd map[string]any) {
	table := relName(rv)
	switch str(cmd["subtype"]) {
	case "AT_AddColumn":
		_, col := child(cmd["def"])
		if !existing {
			return
		}
		var notNull, hasDefault bool
		var rewrite string
		for _, c := range list(col["constraints"]) {
			_, con := child(c)
			switch str(con["contype"]) {
			case "CONSTR_NOTNULL", "CONSTR_PRIMARY":
				notNull = true
			case "CONSTR_DEFAULT":
				hasDefault = true
				if fn := volatileCall(con["raw_expr"]); fn != "" {
					rewrite = fmt.Sprintf("a DEFAULT calling %s(), which is volatile", fn)
				}
			case "CONSTR_IDENTITY":
				hasDefault, rewrite = true, "an identity column"
			case "CONSTR_GENERATED":
				hasDefault, rewrite = true, "a stored generated column"
			}
		}
		if notNull && !hasDefault {
			f.fire(i, st, loc(col), "add-column-not-null", "ADD COLUMN %s ... NOT NULL without a DEFAULT fails on %s as soon as it has rows; add it with a DEFAULT, or nullable, backfill, then add the NOT NULL (see set-not-null)",
				str(col["colname"]), table)
		}
		if rewrite != "" {
			f.fire(i, st, loc(col), "volatile-default", "ADD COLUMN %s with %s rewrites all of %s under an ACCESS EXCLUSIVE lock; add the column without it, backfill in batches, then set the default",
				str(col["colname"]), rewrite, table)
		}
	case "AT_SetNotNull":
		if existing {
			f.fire(i, st, 0, "set-not-null", "SET NOT NULL on %s.%s scans the whole table under an ACCESS EXCLUSIVE lock; add CHECK (%s IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT in a later statement, then SET NOT NULL (it uses the check) and drop the check",
				table, str(cmd["name"]), str(cmd["name"]))
		}
	case "AT_AddConstraint":
		_, con := child(cmd["def"])
		if !existing {
			return
		}
		switch str(con["contype"]) {
		case "CONSTR_FOREIGN", "CONSTR_CHECK":
			if !boolean(con["skip_validation"]) {
				what := "FOREIGN KEY"
				if str(con["contype"]) == "CONSTR_CHECK" {
					what = "CHECK"
				}
				f.fire(i, st, loc(con), "constraint-not-valid", "ADD CONSTRAINT ... %s on %s checks every row while it holds a lock that blocks writes; add it NOT VALID, then VALIDATE CONSTRAINT in a later statement (which lets writes through)",
					what, table)
			}
		case "CONSTR_PRIMARY", "CONSTR_UNIQUE", "CONSTR_EXCLUSION":
			if str(con["indexname"]) == "" {
				f.fire(i, st, loc(con), "index-not-concurrent", "this constraint builds its index on %s while blocking writes; CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT ... USING INDEX",
					table)
			}
		}
	case "AT_AlterColumnType":
		if existing {
			f.fire(i, st, 0, "column-type-rewrite", "changing the type of %s.%s rewrites the table under an ACCESS EXCLUSIVE lock unless the change is binary-compatible (varchar to text, a longer varchar); otherwise add a new column, backfill, and switch",
				table, str(cmd["name"]))
		}
	case "AT_DropColumn":
		if existing {
			f.fire(i, st, 0, "drop-object", "DROP COLUMN %s.%s: the release still running may read it; stop using it in one release, drop it in the next",
				table, str(cmd["name"]))
		}
	}
}

// volatileCall returns the name of a volatile function the expression
// calls, or "".
func volatileCall(v any) string {
	switch t := v.(type) {
	case map[string]any:
		if fc := obj(t["FuncCall"]); fc != nil {
			names := list(fc["funcname"])
			if len(names) > 0 {
				_, last := child(names[len(names)-1])
				if name := strings.ToLower(str(last["sval"])); volatileFuncs[name] {
					return name
				}
			}
		}
		for _, c := range t {
			if n := volatileCall(c); n != "" {
				return n
			}
		}
	case []any:
		for _, c := range t {
			if n := volatileCall(c); n != "" {
				return n
			}
		}
	}
	return ""
}
