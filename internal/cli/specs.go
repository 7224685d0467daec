package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// A command registers its own flags on fs and returns the function that runs
// it with the positional arguments.
type command func(fs *flag.FlagSet) func(ctx context.Context, r *run, args []string) error

// spec is a command and what its help says.
type spec struct {
	name     string
	synopsis string // after "dbinit NAME": "[--to N] [--sql] [--json]"
	summary  string // one line
	about    string // what `dbinit help NAME` adds
	example  string
	readOnly bool // changes nothing: fails fast (5s) when the server does not answer, unless a wait timeout is set
	command  command
}

var specs = []spec{
	{name: "init", synopsis: "", summary: "wait for the server, build or reuse the template, create the working database from it or bring it up to date",
		about:   "What the init container runs (no command = init). With DBINIT_TEMPLATE=none (production mode) it only brings the working database up to date, as up does.",
		example: "DATABASE_URL=postgres://postgres@db/postgres dbinit init", command: cmdInit},
	{name: "wait", summary: "wait until the server accepts connections", example: "dbinit wait --wait-timeout 2m", command: cmdWait},
	{name: "up", synopsis: "[--to N]", summary: "apply pending migrations to the working database (created, empty, when absent)",
		about:   "Checks the database first (dbinit's history or empty; no drift), takes a snapshot when DBINIT_SNAPSHOT asks, applies what is pending, verifies the result.",
		example: "dbinit up --to 42", command: cmdUp},
	{name: "down", synopsis: "(--to N | --steps K)", summary: "revert applied migrations, newest first; every down file needed must exist",
		example: "dbinit down --steps 1", command: cmdDown},
	{name: "status", synopsis: "[--json] [--exit-code]", summary: "applied, pending, changed, missing and partial migrations of the working database",
		about:   "A report: it exits 0 also on drift, unless --exit-code asks for 5 on drift and 7 on pending files.",
		example: "dbinit status --exit-code", readOnly: true, command: cmdStatus},
	{name: "plan", synopsis: "[down] [--to N | --steps K] [--sql] [--json]", summary: "what up (or down) would run, touching nothing",
		about:   "plan lists the files up would apply; plan down the down files down would run (--to N or --steps K). --sql prints every statement with the file and line it comes from.",
		example: "dbinit plan --sql", readOnly: true, command: cmdPlan},
	{name: "validate", synopsis: "[--schema FILE]", summary: "every check that needs no server: names, encoding, statements, directives, unwritten files, the manifest",
		about:   "Usable as a pre-commit hook and in CI without a database: exit 0; 2 with every problem in the files, FILE:LINE:COL each; 5 when the folder and db/migrations.json disagree. --schema FILE also checks a committed dump-schema file against the schema the migrations build (needs the server and pg_dump; 5 when stale).",
		example: "dbinit validate --dir db", command: cmdValidate},
	{name: "lint", synopsis: "[FILES...] [--json]", summary: "production-safety checks on PostgreSQL's own grammar: locks, rewrites, breaking changes",
		about:   "Prints FILE:LINE:COL rule message for each finding; exit 0 with warnings only, 8 when a rule of error severity fires. FILES are paths, names or versions (default: every file). Silence a rule with -- dbinit:lint-ignore RULE on the line before a statement, or in the leading comments for the whole file. docs/lint.md explains every rule and its safe rewrite.",
		example: "dbinit lint db/008_add_email.sql", command: cmdLint},
	{name: "generate-down", synopsis: "VERSION [--force]", summary: "write VERSION's down file from the catalog before and after its up file",
		about:   "On a scratch database at the version before, reads the catalog, applies the up file, reads it again, and writes NNN_name_down.sql that drops what it created, renames back, and re-creates what it dropped or replaced from the server's own definitions, with comments and grants. What cannot be undone without data (a dropped table's rows, a narrowed column, an enum value) is a WARNING comment in the file and on stderr. Refuses to replace a down file without --force. Needs CREATEDB.",
		example: "dbinit generate-down 12", command: cmdGenerateDown},
	{name: "check-down", synopsis: "[--from N]", summary: "prove each down file puts the schema back as it was before its up file",
		about:   "On one scratch database: for each version from N on, fingerprint the catalog, apply up, apply down, compare, apply up again. Lists every version whose down file does not restore the schema, with the differing objects; exit 5 when one fails. Needs CREATEDB.",
		example: "dbinit check-down --from 40", command: cmdCheckDown},
	{name: "manifest", synopsis: "[--check] [--force]", summary: "write db/migrations.json: every file with its checksum, keeping description and depends_on",
		about:   "Once it exists, every command refuses a folder that disagrees with it (exit 5): an edited, renamed, renumbered, missing or unlisted file. Commit it with the files; two branches that each add a migration then conflict in git.",
		example: "dbinit manifest", command: cmdManifest},
	{name: "squash", synopsis: "--to N NAME", summary: "replace the files up to version N with one file written from the database they build",
		about:   "Builds a scratch database at version N, writes NNN_NAME.sql from pg_dump (schema and rows) with -- dbinit:replaces FROM-N, moves the replaced files to squashed/, checks the folder builds the same schema (else undoes everything) and updates the manifest. A database with every replaced version records the new file without running it; a new database runs it; one with only some of them is refused. Needs pg_dump.",
		example: "dbinit squash --to 40 baseline", command: cmdSquash},
	{name: "dump-schema", synopsis: "[-o FILE]", summary: "the schema the migrations build (pg_dump --schema-only, deterministic), for review and code generators",
		about:   "Dumps a scratch copy of the template (built or updated first) and drops it; with --database NAME on the command line, that database instead. No version banners, no \\restrict keys, no session settings, without dbinit's own schema: the same migrations give the same bytes. Needs pg_dump of the server's major version or newer.",
		example: "dbinit dump-schema -o db/schema.sql", command: cmdDumpSchema},
	{name: "clone", synopsis: "[--replace] [--rebuild] NAME", summary: "create database NAME from the template (building it first when files were added)",
		example: "dbinit clone test_run_42 --replace", command: cmdClone},
	{name: "new", synopsis: "NAME", summary: "write the next NNN_name.sql and NNN_name_down.sql",
		about:   "Both files start with a -- dbinit:todo line: dbinit refuses to run them until the line is gone.",
		example: "dbinit new add_users", command: cmdNew},
	{name: "baseline", synopsis: "--version N [--force]", summary: "record 1..N as applied without running them (a database loaded before dbinit)",
		example: "dbinit baseline --version 7", command: cmdBaseline},
	{name: "accept", synopsis: "VERSION", summary: "record the checksum of an applied file that was edited on purpose",
		example: "dbinit accept 7", command: cmdAccept},
	{name: "snapshot", synopsis: "list [--json] | restore NAME", summary: "dbinit's snapshots of the working database; put one in its place (the current one is kept)",
		example: "dbinit snapshot restore savvi_studio_snap_20261129T051234", command: cmdSnapshot},
	{name: "version", summary: "print the version (also --version)"},
	{name: "help", synopsis: "[COMMAND]", summary: "this text, or a command's own"},
}

func lookup(name string) (spec, bool) {
	for _, s := range specs {
		if s.name == name {
			return s, true
		}
	}
	return spec{}, false
}

// globalFlagNames are the flags every command takes.
var globalFlagNames = []string{"dir", "database", "template", "log-format", "wait-timeout", "lock-timeout"}

func usageText() string {
	var b strings.Builder
	b.WriteString("dbinit: PostgreSQL schema initialisation and migrations for containers.\n\n")
	b.WriteString("Usage: dbinit [global flags] [command] [flags] [arguments]   (no command = init)\n\nCommands:\n")
	for _, s := range specs {
		left := strings.TrimSpace(s.name + " " + s.synopsis)
		if len(left) > 24 {
			fmt.Fprintf(&b, "  %s\n  %-24s %s\n", left, "", s.summary)
		} else {
			fmt.Fprintf(&b, "  %-24s %s\n", left, s.summary)
		}
	}
	b.WriteString(`
Global flags (before or after the command; each overrides its variable):
  --dir DIR              migrations folder (DBINIT_DIR, default ./db)
  --database NAME        working database (DBINIT_DATABASE, default savvi_studio)
  --template NAME        template database (DBINIT_TEMPLATE, default savvi_studio_template);
                         none = production mode: init only brings the working database up to date
  --log-format FORMAT    text or json (DBINIT_LOG_FORMAT)
  --wait-timeout D       how long to wait for the server (DBINIT_WAIT_TIMEOUT, default 60s; 5s for status and plan)
  --lock-timeout D       how long to wait for another runner (DBINIT_LOCK_TIMEOUT, default 5m)
  --version, --help

The server is DATABASE_URL (or DATABASE_URL_FILE), else the libpq variables
PGHOST, PGPORT, PGUSER, PGPASSWORD (or PGPASSWORD_FILE), PGDATABASE, PGSSLMODE...
Its database is the maintenance database (CREATE DATABASE), postgres by default.
Every variable: docs/reference.md. A command's own help: dbinit help COMMAND.

Exit codes: 0 ok, 1 migration failed, 2 usage/configuration/bad folder,
3 server unreachable or connection lost, 4 authentication or permission refused,
5 drift, 6 a lock not had in time, 7 files pending (status --exit-code), 8 lint errors, 130 interrupted.
`)
	return b.String()
}

// commandHelp is `dbinit help NAME` and `dbinit NAME --help`.
func commandHelp(w io.Writer, s spec) {
	fmt.Fprintf(w, "Usage: dbinit %s\n\n%s.\n", strings.TrimSpace(s.name+" "+s.synopsis), upperFirst(s.summary))
	if s.about != "" {
		fmt.Fprintf(w, "\n%s\n", s.about)
	}
	if s.command != nil {
		fs := flag.NewFlagSet(s.name, flag.ContinueOnError)
		s.command(fs)
		var lines []string
		fs.VisitAll(func(f *flag.Flag) {
			arg := ""
			if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); !isBool {
				arg = " " + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
				if f.Name == "to" || f.Name == "version" {
					arg = " N"
				}
				if f.Name == "steps" {
					arg = " K"
				}
				if f.Name == "o" || f.Name == "schema" {
					arg = " FILE"
				}
			}
			dash := "--"
			if len(f.Name) == 1 {
				dash = "-" // -o FILE, as tools spell it
			}
			lines = append(lines, fmt.Sprintf("  %s%-20s %s", dash, f.Name+arg, f.Usage))
		})
		if len(lines) > 0 {
			sort.Strings(lines)
			fmt.Fprintf(w, "\nFlags:\n%s\n", strings.Join(lines, "\n"))
		}
		fmt.Fprintf(w, "\nGlobal flags: --%s (dbinit help)\n", strings.Join(globalFlagNames, ", --"))
	}
	if s.name == "lint" {
		fmt.Fprintf(w, "\n%s", lintRulesHelp())
	}
	if s.example != "" {
		fmt.Fprintf(w, "\nExample:\n  %s\n", s.example)
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// suggest returns the candidate closest to got, or "" when none is close
// (a shared prefix, or at most two edits).
func suggest(got string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		d := editDistance(got, c)
		if strings.HasPrefix(c, got) && len(got) >= 2 {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
