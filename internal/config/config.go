// Package config reads dbinit's configuration from an environment map.
//
// The environment is passed in as a map (not read from the process) so that
// tests can give each case its own. Command-line flags are applied on top by
// the caller. Variable names are part of dbinit's outside contract: users'
// compose files, manifests and CI jobs set them. docs/reference.md lists
// every one; a test fails when the struct and the reference disagree.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/jackc/pgx/v5"
)

// Config is dbinit's configuration. Every field can be set from the
// environment; the defaults are those of the contract.
type Config struct {
	DatabaseURL     string        `env:"DATABASE_URL"`      // "postgres://dbinit@db:5432/postgres"; its database is the maintenance database
	DatabaseURLFile string        `env:"DATABASE_URL_FILE"` // "/run/secrets/database_url"
	PasswordFile    string        `env:"PGPASSWORD_FILE"`   // "/run/secrets/pgpassword"; used with the libpq variables
	Dir             string        `env:"DBINIT_DIR" envDefault:"./db"`
	Database        string        `env:"DBINIT_DATABASE" envDefault:"savvi_studio"`
	Template        string        `env:"DBINIT_TEMPLATE" envDefault:"savvi_studio_template"`
	WaitTimeout     time.Duration `env:"DBINIT_WAIT_TIMEOUT" envDefault:"60s"`
	LockTimeout     time.Duration `env:"DBINIT_LOCK_TIMEOUT" envDefault:"5m"`
	LogFormat       string        `env:"DBINIT_LOG_FORMAT" envDefault:"text"` // "text" or "json"
	LogLevel        string        `env:"DBINIT_LOG_LEVEL" envDefault:"info"`  // "debug", "info", "warn", "error"
	Reset           bool          `env:"DBINIT_RESET"`                        // drop and re-clone the working database (development only)
	AllowOutOfOrder bool          `env:"DBINIT_ALLOW_OUT_OF_ORDER"`           // apply a new file below the highest applied version
	Owner           string        `env:"DBINIT_OWNER"`                        // owner of the working database when it is created, "app"
	CloneStrategy   string        `env:"DBINIT_CLONE_STRATEGY"`               // "wal_log" or "file_copy" (PostgreSQL 15+); "" = server default
	// EntrypointMode is set by the postgres image's first-start hook,
	// where dbinit runs against the temporary server that listens on the
	// unix socket only, on purpose.
	EntrypointMode bool `env:"DBINIT_ENTRYPOINT_MODE"`

	// Migration statements on a live database.
	DDLLockTimeout   time.Duration `env:"DBINIT_DDL_LOCK_TIMEOUT" envDefault:"5s"`  // lock_timeout of every migration statement; 0 = none
	DDLRetryTimeout  time.Duration `env:"DBINIT_DDL_RETRY_TIMEOUT" envDefault:"5m"` // how long a file that hit the lock timeout is retried
	StatementTimeout time.Duration `env:"DBINIT_STATEMENT_TIMEOUT"`                 // statement_timeout of every migration statement; 0 = none

	// Before migrating a working database that has data.
	Snapshot     string `env:"DBINIT_SNAPSHOT"`                     // "auto", "always" or "never"; "" = auto in production mode, never otherwise
	SnapshotKeep int    `env:"DBINIT_SNAPSHOT_KEEP" envDefault:"3"` // how many of dbinit's snapshots of the working database to keep
	DumpDir      string `env:"DBINIT_DUMP_DIR"`                     // where pg_dump -Fc writes a dump before migrating; "" = no dump

	// AfterHook is a shell command run after an init or up that changed
	// something (codegen in development), "pnpm db:codegen".
	AfterHook string `env:"DBINIT_AFTER_HOOK"`

	// env is the environment the configuration was read from; the libpq
	// variables are taken from it when DatabaseURL is unset.
	env map[string]string
}

// Error is a configuration error (exit code 2).
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func errorf(format string, args ...any) error { return &Error{Msg: fmt.Sprintf(format, args...)} }

// Environ turns os.Environ-style "KEY=value" pairs into a map.
func Environ(pairs []string) map[string]string {
	m := make(map[string]string, len(pairs))
	for _, kv := range pairs {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// Load reads the configuration from environ. It reads the *_FILE secrets and
// checks the values, so a nil error means the configuration is usable.
func Load(environ map[string]string) (*Config, error) {
	for _, name := range []string{"DATABASE_URL", "PGPASSWORD"} {
		if environ[name] != "" && environ[name+"_FILE"] != "" {
			return nil, errorf("both %s and %s_FILE are set; set only one", name, name)
		}
	}
	cfg := &Config{env: environ}
	if err := env.ParseWithOptions(cfg, env.Options{Environment: environ}); err != nil {
		return nil, errorf("configuration: %s", unwrapEnvError(err))
	}
	if cfg.DatabaseURLFile != "" {
		s, err := readSecret(cfg.DatabaseURLFile)
		if err != nil {
			return nil, errorf("DATABASE_URL_FILE: %v", err)
		}
		cfg.DatabaseURL = s
	}
	return cfg, cfg.Validate()
}

// Validate checks values that flags may also have set.
func (c *Config) Validate() error {
	switch c.LogFormat {
	case "text", "json":
	default:
		return errorf("DBINIT_LOG_FORMAT must be text or json, not %q", c.LogFormat)
	}
	switch strings.ToLower(c.CloneStrategy) {
	case "", "wal_log", "file_copy":
	default:
		return errorf("DBINIT_CLONE_STRATEGY must be wal_log or file_copy, not %q", c.CloneStrategy)
	}
	if c.WaitTimeout <= 0 {
		return errorf("DBINIT_WAIT_TIMEOUT must be positive, not %s", c.WaitTimeout)
	}
	if c.LockTimeout <= 0 {
		return errorf("DBINIT_LOCK_TIMEOUT must be positive, not %s", c.LockTimeout)
	}
	names := []struct{ what, name string }{{"DBINIT_DATABASE", c.Database}}
	if !c.Production() {
		names = append(names, struct{ what, name string }{"DBINIT_TEMPLATE", c.Template})
	}
	for _, n := range names {
		if err := CheckName(n.name); err != nil {
			return errorf("%s: %v", n.what, err)
		}
	}
	for _, d := range []struct {
		what string
		v    time.Duration
	}{{"DBINIT_DDL_LOCK_TIMEOUT", c.DDLLockTimeout}, {"DBINIT_DDL_RETRY_TIMEOUT", c.DDLRetryTimeout}, {"DBINIT_STATEMENT_TIMEOUT", c.StatementTimeout}} {
		if d.v < 0 {
			return errorf("%s must not be negative, not %s", d.what, d.v)
		}
	}
	switch c.Snapshot {
	case "", SnapshotAuto, SnapshotAlways, SnapshotNever:
	default:
		return errorf("DBINIT_SNAPSHOT must be auto, always or never, not %q", c.Snapshot)
	}
	if c.SnapshotKeep < 1 {
		return errorf("DBINIT_SNAPSHOT_KEEP must be 1 or more, not %d", c.SnapshotKeep)
	}
	if c.Database == c.Template {
		return errorf("DBINIT_DATABASE and DBINIT_TEMPLATE must differ (both are %q)", c.Database)
	}
	if c.Owner != "" && len(c.Owner) > 63 {
		return errorf("DBINIT_OWNER: name %q is longer than 63 bytes", c.Owner)
	}
	return nil
}

// NoTemplate is the DBINIT_TEMPLATE value of production mode: init
// brings the working database up to date with up only, and builds no
// template.
const NoTemplate = "none"

// Production reports production mode (DBINIT_TEMPLATE=none).
func (c *Config) Production() bool { return c.Template == NoTemplate }

// Snapshot modes.
const (
	SnapshotAuto   = "auto"   // snapshot when nobody else is connected; skip, with a warning, otherwise
	SnapshotAlways = "always" // snapshot, or stop (exit 6) when others are connected
	SnapshotNever  = "never"
)

// SnapshotMode is DBINIT_SNAPSHOT with its default applied: auto in
// production mode, never otherwise.
func (c *Config) SnapshotMode() string {
	switch {
	case c.Snapshot != "":
		return c.Snapshot
	case c.Production():
		return SnapshotAuto
	}
	return SnapshotNever
}

// CheckName rejects database names PostgreSQL would truncate or refuse.
// Names are always quoted as identifiers, so any other character is allowed.
func CheckName(name string) error {
	switch {
	case name == "":
		return errors.New("database name is empty")
	case len(name) > 63:
		return fmt.Errorf("database name %q is %d bytes; PostgreSQL allows 63 and would truncate it", name, len(name))
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("database name %q contains a NUL byte", name)
	}
	return nil
}

// libpqVars maps libpq environment variables to connection-string keywords.
var libpqVars = map[string]string{
	"PGHOST":               "host",
	"PGHOSTADDR":           "hostaddr",
	"PGPORT":               "port",
	"PGUSER":               "user",
	"PGPASSWORD":           "password",
	"PGDATABASE":           "dbname",
	"PGSSLMODE":            "sslmode",
	"PGSSLROOTCERT":        "sslrootcert",
	"PGSSLCERT":            "sslcert",
	"PGSSLKEY":             "sslkey",
	"PGSSLPASSWORD":        "sslpassword",
	"PGSSLSNI":             "sslsni",
	"PGCONNECT_TIMEOUT":    "connect_timeout",
	"PGAPPNAME":            "application_name",
	"PGTARGETSESSIONATTRS": "target_session_attrs",
	"PGSERVICE":            "service",
	"PGSERVICEFILE":        "servicefile",
	"PGPASSFILE":           "passfile",
	"PGOPTIONS":            "options",
}

// ConnConfig returns the connection configuration for the maintenance
// database. Errors never contain the password or the raw URL.
func (c *Config) ConnConfig() (*pgx.ConnConfig, error) {
	connString := c.DatabaseURL
	source := "DATABASE_URL"
	if connString == "" {
		source = "PG* variables"
		kv, err := c.libpqConnString()
		if err != nil {
			return nil, err
		}
		connString = kv
	}
	cc, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, errorf("%s: invalid connection settings: %s", source, parseErrorReason(err))
	}
	if cc.Database == "" {
		cc.Database = "postgres"
	}
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "dbinit"
	}
	return cc, nil
}

func (c *Config) libpqConnString() (string, error) {
	keys := make([]string, 0, len(libpqVars))
	for k := range libpqVars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v := c.env[k]
		if k == "PGPASSWORD" && c.PasswordFile != "" {
			s, err := readSecret(c.PasswordFile)
			if err != nil {
				return "", errorf("PGPASSWORD_FILE: %v", err)
			}
			v = s
		}
		if v == "" {
			continue
		}
		fmt.Fprintf(&b, "%s=%s ", libpqVars[k], quoteValue(v))
	}
	if c.env["PGDATABASE"] == "" {
		b.WriteString("dbname=postgres")
	}
	return strings.TrimSpace(b.String()), nil
}

// Secrets returns the strings that must never be printed: the password and
// the raw connection URL.
func (c *Config) Secrets() []string {
	var s []string
	add := func(p string) {
		if p != "" {
			// Also as log handlers and URLs escape it.
			s = append(s, p, url.QueryEscape(p), url.PathEscape(p), strings.Trim(strconv.Quote(p), `"`))
		}
	}
	if c.DatabaseURL != "" {
		s = append(s, c.DatabaseURL)
		if u, err := url.Parse(c.DatabaseURL); err == nil {
			if u.User != nil {
				p, _ := u.User.Password()
				add(p)
			}
			add(u.Query().Get("password"))
			add(u.Query().Get("sslpassword"))
		}
		if cc, err := pgx.ParseConfig(c.DatabaseURL); err == nil {
			add(cc.Password) // keyword/value strings: password=...
		}
	}
	add(c.env["PGPASSWORD"])
	add(c.env["PGSSLPASSWORD"])
	if c.PasswordFile != "" {
		if p, err := readSecret(c.PasswordFile); err == nil {
			add(p)
		}
	}
	return s
}

// EnvSecrets returns the strings that must never be printed, from an
// environment that could not be loaded as a configuration (a bad
// variable): the raw DATABASE_URL and every password it and the libpq
// variables and secret files hold.
func EnvSecrets(environ map[string]string) []string {
	c := &Config{DatabaseURL: environ["DATABASE_URL"], PasswordFile: environ["PGPASSWORD_FILE"], env: environ}
	if f := environ["DATABASE_URL_FILE"]; f != "" && c.DatabaseURL == "" {
		if s, err := readSecret(f); err == nil {
			c.DatabaseURL = s
		}
	}
	return c.Secrets()
}

// readSecret reads a Docker/Kubernetes secret file; one trailing newline is
// dropped, as editors and `echo` add it.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(string(b), "\n")
	s = strings.TrimSuffix(s, "\r")
	return s, nil
}

func quoteValue(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	v = strings.ReplaceAll(v, `'`, `\'`)
	return "'" + v + "'"
}

// parseErrorReason says why pgx refused a connection string in words of
// its own. Parsers' messages quote the input (pgx the whole string, with the
// password masked only where it could find it; net/url the bad escape,
// "%#w"), and that may be part of the password. So only the reason is
// recognised, in the text after the quoted input, and said anew.
func parseErrorReason(err error) string {
	const encode = "percent-encode special characters in the user name and password (% as %25, # as %23, @ as %40, / as %2F, ? as %3F, : as %3A)"
	msg := err.Error()
	tail := msg[strings.LastIndex(msg, "`")+1:]
	for _, r := range []struct{ has, say string }{
		{"percent-encoded", "a % is not followed by two hex digits; " + encode},
		{"unexpected spaces", "it has a space; write spaces as %20"},
		{"invalid port", "the port is not a number from 1 to 65535"},
		{"could not match", "the numbers of hosts and ports differ"},
		{"sslmode is invalid", "sslmode must be disable, allow, prefer, require, verify-ca or verify-full"},
		{"sslcertmode", "sslcertmode must be disable, allow or require"},
		{"connect_timeout", "connect_timeout must be a whole number of seconds"},
		{"target_session_attrs", "target_session_attrs has a value pgx does not know"},
		{"failed to read service", "the service file (PGSERVICEFILE) cannot be read, or has no such service"},
		{"failed to configure TLS", "the TLS settings cannot be used: check sslrootcert, sslcert, sslkey and sslpassword"},
		{"failed to parse as URL", "it is not a valid postgres:// URL; " + encode},
		{"failed to parse as keyword/value", "it is not valid key=value settings (quote values with spaces in single quotes)"},
	} {
		if strings.Contains(tail, r.has) {
			return r.say
		}
	}
	var esc url.EscapeError
	if errors.As(err, &esc) {
		return "a % is not followed by two hex digits; " + encode
	}
	return "it is neither a postgres:// URL nor key=value settings; " + encode
}

func unwrapEnvError(err error) string {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err.Error()
	}
	msgs := make([]string, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			// Name the variable the user set, not the Go field.
			msgs = append(msgs, fmt.Sprintf("%s: %v", envName(pe.Name), pe.Err))
			continue
		}
		msgs = append(msgs, e.Error())
	}
	return strings.Join(msgs, "; ")
}

func envName(field string) string {
	if f, ok := reflect.TypeFor[Config]().FieldByName(field); ok {
		return f.Tag.Get("env")
	}
	return field
}
