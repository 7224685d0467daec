package migrate

import (
	"bytes"
	"errors"
	"maps"
	"strings"
	"testing"
)

var manifestFiles = map[string]string{
	"001_users.sql":      "CREATE TABLE users (id int);\n",
	"001_users_down.sql": "DROP TABLE users;\n",
	"002_posts.sql":      "CREATE TABLE posts (id int, user_id int);\n",
	"003_idx.sql":        "-- dbinit:no-transaction\nCREATE INDEX CONCURRENTLY posts_user ON posts (user_id);\n",
}

// withManifest returns files plus the manifest dbinit manifest would write
// for them, after edit changed the manifest's entries.
func withManifest(t *testing.T, files map[string]string, edit func(*Manifest)) map[string]string {
	t.Helper()
	m := BuildManifest(testSet(t, files), nil)
	if edit != nil {
		edit(m)
		m.Head = head(m.Migrations)
	}
	out := maps.Clone(files)
	out[ManifestFile] = string(m.Marshal())
	return out
}

func TestManifestBytesAreStable(t *testing.T) {
	set := testSet(t, manifestFiles)
	a := BuildManifest(set, nil).Marshal()
	b := BuildManifest(set, nil).Marshal()
	if !bytes.Equal(a, b) || !bytes.HasSuffix(a, []byte("}\n")) || bytes.Contains(a, []byte("\t")) {
		t.Fatalf("manifest bytes differ or are not formatted:\n%s", a)
	}
	// Written again from itself (the hand-kept fields come through), the
	// same bytes.
	m, err := ParseManifest(a)
	if err != nil {
		t.Fatal(err)
	}
	m.Migrations[1].Description = "posts belong to users"
	m.Migrations[2].DependsOn = []int64{2, 1, 2}
	again := BuildManifest(set, m)
	if again.Migrations[1].Description != "posts belong to users" || len(again.Migrations[2].DependsOn) != 2 || again.Migrations[2].DependsOn[0] != 1 {
		t.Fatalf("hand-kept fields lost or not normalized: %+v", again.Migrations)
	}
	m2, err := ParseManifest(again.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(BuildManifest(set, m2).Marshal(), again.Marshal()) {
		t.Fatal("rewriting a manifest changed its bytes")
	}
	want := []string{`"version": 3`, `"mode": "no-transaction"`, `"mode": "transaction"`, `"down": "`, `"head": "3:`}
	for _, w := range want {
		if !bytes.Contains(a, []byte(w)) {
			t.Errorf("manifest lacks %s:\n%s", w, a)
		}
	}
	// The checksum ignores line endings, as the history's does.
	crlf := maps.Clone(manifestFiles)
	crlf["002_posts.sql"] = "\ufeffCREATE TABLE posts (id int, user_id int);\r\n"
	if !bytes.Equal(BuildManifest(testSet(t, crlf), nil).Marshal(), a) {
		t.Error("a CRLF checkout changes the manifest")
	}
}

func TestManifestAgreesWithItsFolder(t *testing.T) {
	set := testSet(t, withManifest(t, manifestFiles, nil))
	if set.Manifest == nil {
		t.Fatal("manifest not loaded")
	}
	if err := set.CheckManifest(); err != nil {
		t.Fatal(err)
	}
}

func TestManifestDisagreements(t *testing.T) {
	base := withManifest(t, manifestFiles, nil)
	change := func(f func(files map[string]string)) map[string]string {
		files := maps.Clone(base)
		f(files)
		return files
	}
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"edited", change(func(f map[string]string) { f["002_posts.sql"] = "CREATE TABLE posts (id bigint);" }),
			"db/002_posts.sql: was edited after migrations.json recorded it"},
		{"renamed", change(func(f map[string]string) {
			f["002_articles.sql"] = f["002_posts.sql"]
			delete(f, "002_posts.sql")
		}), `db/002_articles.sql: is listed in migrations.json as version 2 "posts": a migration was renamed`},
		{"renumbered", change(func(f map[string]string) {
			f["004_posts.sql"] = f["002_posts.sql"]
			delete(f, "002_posts.sql")
		}), "db/004_posts.sql: is listed in migrations.json as version 2: a migration was renumbered"},
		{"missing", change(func(f map[string]string) { delete(f, "003_idx.sql") }),
			"db/migrations.json: lists version 3 (idx) but the folder has no such file"},
		{"new file", change(func(f map[string]string) { f["004_more.sql"] = "SELECT 1;" }),
			"db/004_more.sql: is not in migrations.json: run `dbinit manifest`"},
		{"down added", change(func(f map[string]string) { f["002_posts_down.sql"] = "DROP TABLE posts;" }),
			"db/002_posts_down.sql: is not in migrations.json"},
		{"down removed", change(func(f map[string]string) { delete(f, "001_users_down.sql") }),
			"db/001_users.sql: lost its down file"},
		{"down edited", change(func(f map[string]string) { f["001_users_down.sql"] = "DROP TABLE IF EXISTS users;" }),
			"db/001_users_down.sql: was edited after migrations.json recorded it"},
		{"head edited", change(func(f map[string]string) {
			f[ManifestFile] = strings.Replace(f[ManifestFile], `"head": "3:`, `"head": "3:0`, 1)
		}), "its head line does not match its entries"},
		{"dependency on a later version", withManifest(t, manifestFiles, func(m *Manifest) { m.Migrations[0].DependsOn = []int64{3} }),
			"db/001_users.sql: depends on version 3, which comes after it"},
		{"dependency unmet", withManifest(t, manifestFiles, func(m *Manifest) { m.Migrations[2].DependsOn = []int64{9} }),
			"db/003_idx.sql: depends on version 9, which is not in the folder"},
		{"dependency on itself", withManifest(t, manifestFiles, func(m *Manifest) { m.Migrations[1].DependsOn = []int64{2} }),
			"depends on itself"},
		{"cycle", withManifest(t, manifestFiles, func(m *Manifest) {
			m.Migrations[0].DependsOn = []int64{2}
			m.Migrations[1].DependsOn = []int64{1}
		}), "depends_on has a cycle: 1 -> 2 -> 1"},
	}
	for _, c := range cases {
		set, err := Load(mapFS(c.files), "db")
		if err != nil {
			t.Errorf("%s: load: %v", c.name, err)
			continue
		}
		err = set.CheckManifest()
		var me *ManifestError
		if !errors.As(err, &me) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want a ManifestError with %q", c.name, err, c.want)
		}
	}
}

func TestManifestThatCannotBeRead(t *testing.T) {
	for name, text := range map[string]string{
		"syntax":        "{\n  \"format\": 1,\n  \"migrations\": [\n    {\"version\": 1,}\n  ]\n}\n",
		"unknown field": `{"format": 1, "migrations": [{"version": 1, "name": "users", "up": "x", "mode": "transaction", "depends-on": [1]}], "head": ""}`,
		"conflict":      "{\n<<<<<<< HEAD\n  \"head\": \"8:aa\"\n=======\n  \"head\": \"8:bb\"\n>>>>>>> other\n}\n",
		"format":        `{"format": 9, "migrations": [], "head": ""}`,
	} {
		files := maps.Clone(manifestFiles)
		files[ManifestFile] = text
		_, err := Load(mapFS(files), "db")
		var le *LoadError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), "db/migrations.json") {
			t.Errorf("%s: got %v, want a LoadError naming the manifest", name, err)
		}
		if name == "syntax" && !strings.Contains(err.Error(), "migrations.json:4:") {
			t.Errorf("syntax error without its line: %v", err)
		}
	}
}

func TestDependsOnInPlans(t *testing.T) {
	files := withManifest(t, map[string]string{
		"001_a.sql": "SELECT 1;", "002_b.sql": "SELECT 2;", "003_c.sql": "SELECT 3;",
	}, func(m *Manifest) { m.Migrations[2].DependsOn = []int64{1} })
	set := testSet(t, files)
	if got := set.Find(3).DependsOn; len(got) != 1 || got[0] != 1 {
		t.Fatalf("DependsOn = %v", got)
	}
	// In order, the dependency is met by the plan itself.
	if _, err := PlanUp(set, nil, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	// Out of order: 3 arrives below an applied 2 while 1 is still missing
	// (a history from elsewhere): refused.
	rows := []Applied{{Version: 2, Name: "b", Checksum: set.Find(2).Up.Checksum, State: StateApplied}}
	_, err := PlanUp(set, rows, UpOptions{To: 3, AllowOutOfOrder: true})
	if err != nil {
		t.Fatalf("1 is planned before 3: %v", err)
	}
	_, err = PlanUp(&Set{Dir: "db", Migrations: []*Migration{set.Find(2), set.Find(3)}}, rows, UpOptions{AllowOutOfOrder: true})
	var pe *PlanError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "db/003_c.sql depends on version 1") {
		t.Fatalf("unmet dependency: %v", err)
	}
}
