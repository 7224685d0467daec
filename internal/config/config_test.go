package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	cfg, err := Load(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dir != "./db" || cfg.Database != "savvi_studio" || cfg.Template != "savvi_studio_template" ||
		cfg.WaitTimeout != 60*time.Second || cfg.LockTimeout != 5*time.Minute || cfg.LogFormat != "text" || cfg.Reset {
		t.Fatalf("defaults = %+v", cfg)
	}
	cc, err := cfg.ConnConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cc.Database != "postgres" || cc.RuntimeParams["application_name"] != "dbinit" {
		t.Fatalf("maintenance database %q, application_name %q", cc.Database, cc.RuntimeParams["application_name"])
	}
}

func TestLibpqVariables(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("s3cret 'quoted'\\\n"), 0o600)
	cfg, err := Load(map[string]string{"PGHOST": "db.internal", "PGPORT": "6543", "PGUSER": "migrator",
		"PGPASSWORD_FILE": pwFile, "PGDATABASE": "maint", "PGSSLMODE": "disable"})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cfg.ConnConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cc.Host != "db.internal" || cc.Port != 6543 || cc.User != "migrator" || cc.Database != "maint" || cc.Password != "s3cret 'quoted'\\" {
		t.Fatalf("conn config = host %q port %d user %q db %q password %q", cc.Host, cc.Port, cc.User, cc.Database, cc.Password)
	}
	if !contains(cfg.Secrets(), "s3cret 'quoted'\\") {
		t.Fatal("the file's password is not among the secrets to mask")
	}
}

func TestDatabaseURLFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "url")
	os.WriteFile(f, []byte("postgres://u:pw-from-file@h:5433/m\n"), 0o600)
	cfg, err := Load(map[string]string{"DATABASE_URL_FILE": f})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cfg.ConnConfig()
	if err != nil || cc.Password != "pw-from-file" || cc.Port != 5433 || cc.Database != "m" {
		t.Fatalf("%v %+v", err, cc)
	}
}

func TestRejects(t *testing.T) {
	long := strings.Repeat("x", 64)
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"DATABASE_URL": "postgres://x", "DATABASE_URL_FILE": "/f"}, "both DATABASE_URL and DATABASE_URL_FILE"},
		{map[string]string{"PGPASSWORD": "a", "PGPASSWORD_FILE": "/f"}, "both PGPASSWORD and PGPASSWORD_FILE"},
		{map[string]string{"DBINIT_DATABASE": long}, "64 bytes; PostgreSQL allows 63"},
		{map[string]string{"DBINIT_TEMPLATE": long}, "DBINIT_TEMPLATE"},
		{map[string]string{"DBINIT_DATABASE": "same", "DBINIT_TEMPLATE": "same"}, "must differ"},
		{map[string]string{"DBINIT_LOG_FORMAT": "xml"}, "text or json"},
		{map[string]string{"DBINIT_WAIT_TIMEOUT": "soon"}, "DBINIT_WAIT_TIMEOUT"},
		{map[string]string{"DBINIT_RESET": "maybe"}, "DBINIT_RESET"},
		{map[string]string{"DBINIT_CLONE_STRATEGY": "fast"}, "wal_log or file_copy"},
		{map[string]string{"DATABASE_URL_FILE": "/nonexistent/url"}, "DATABASE_URL_FILE"},
	}
	for _, tt := range tests {
		_, err := Load(tt.env)
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want *Error containing %q", tt.env, err, tt.want)
		}
	}
}

// TestMalformedURLHidesPassword: no part of an unparseable connection
// string is echoed, not even the two characters after a bad % escape.
func TestMalformedURLHidesPassword(t *testing.T) {
	for _, tc := range []struct{ url, password, reason string }{
		{"postgres://user:hunter2@host:port/db", "hunter2", "port"},
		{"postgres://user:hunter2@[::1/db", "hunter2", "percent-encode"},
		{"host=x password=hunter2 port=abc", "hunter2", "port"},
		{"postgres://user:p%#w@host/db", "p%#w", "% is not followed by two hex digits"},
		{"postgres://user:50%off@host/db", "50%off", "% is not followed by two hex digits"},
	} {
		cfg, err := Load(map[string]string{"DATABASE_URL": tc.url})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cfg.ConnConfig()
		if err == nil {
			t.Fatalf("%s: no error", tc.url)
		}
		msg := err.Error()
		// Any two consecutive characters of the password.
		for i := 0; i+2 <= len(tc.password); i++ {
			if strings.Contains(msg, tc.password[i:i+2]) && !strings.Contains("percent-encode special characters in the user name and password (% as %25, # as %23, @ as %40, / as %2F, ? as %3F, : as %3A)", tc.password[i:i+2]) {
				t.Errorf("%s: %q of the password in %q", tc.url, tc.password[i:i+2], msg)
			}
		}
		if !strings.Contains(msg, tc.reason) {
			t.Errorf("%s: %q does not say %q", tc.url, msg, tc.reason)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestReferenceListsEveryVariable: docs/reference.md lists every variable
// the configuration reads, and nothing the configuration does not read.
func TestReferenceListsEveryVariable(t *testing.T) {
	ref, err := os.ReadFile("../../docs/reference.md")
	if err != nil {
		t.Fatal(err)
	}
	// The reference's variables: the first cell of the rows of the two
	// tables under "## Environment variables", before "### For tests".
	text := string(ref)
	start := strings.Index(text, "## Environment variables")
	end := strings.Index(text, "### For tests")
	if start < 0 || end < start {
		t.Fatal("docs/reference.md has no \"## Environment variables\" section followed by \"### For tests\"")
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]*)` \\|").FindAllStringSubmatch(text[start:end], -1) {
		documented[m[1]] = true
	}
	read := map[string]bool{}
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		if name := typ.Field(i).Tag.Get("env"); name != "" {
			read[name] = true
		}
	}
	for name := range libpqVars {
		read[name] = true
	}
	for name := range read {
		if !documented[name] {
			t.Errorf("%s is read by the configuration but missing from docs/reference.md", name)
		}
	}
	for name := range documented {
		if !read[name] {
			t.Errorf("docs/reference.md documents %s, which the configuration does not read", name)
		}
	}
}
