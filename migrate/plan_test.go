package migrate

import (
	"errors"
	"strings"
	"testing"
)

func testSet(t *testing.T, files map[string]string) *Set {
	t.Helper()
	set, err := Load(mapFS(files), "db")
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func applied(set *Set, versions ...int64) []Applied {
	var out []Applied
	for _, v := range versions {
		m := set.Find(v)
		out = append(out, Applied{Version: v, Name: m.Name, Checksum: m.Up.Checksum, State: StateApplied})
	}
	return out
}

func stepVersions(p *Plan) []int64 {
	var out []int64
	for _, s := range p.Steps {
		out = append(out, s.Migration.Version)
	}
	return out
}

var threeFiles = map[string]string{
	"001_a.sql": "SELECT 1;", "001_a_down.sql": "SELECT -1;",
	"002_b.sql": "SELECT 2;", "002_b_down.sql": "SELECT -2;",
	"003_c.sql": "SELECT 3;",
}

func TestPlanUp(t *testing.T) {
	set := testSet(t, threeFiles)
	tests := []struct {
		name    string
		applied []Applied
		opts    UpOptions
		want    []int64
	}{
		{"fresh", nil, UpOptions{}, []int64{1, 2, 3}},
		{"some applied", applied(set, 1), UpOptions{}, []int64{2, 3}},
		{"all applied", applied(set, 1, 2, 3), UpOptions{}, nil},
		{"to", nil, UpOptions{To: 2}, []int64{1, 2}},
		{"out of order allowed", applied(set, 1, 3), UpOptions{AllowOutOfOrder: true}, []int64{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := PlanUp(set, tt.applied, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := stepVersions(p); !equalInts(got, tt.want) {
				t.Fatalf("steps = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPlanUpDrift(t *testing.T) {
	set := testSet(t, threeFiles)
	changed := applied(set, 1, 2)
	changed[1].Checksum = "0000"
	tests := []struct {
		name    string
		applied []Applied
		want    string
	}{
		{"changed", changed, "db/002_b.sql (version 2) changed after it was applied"},
		{"out of order", applied(set, 1, 3), "db/002_b.sql (version 2) is new but version 3 is already applied"},
	}
	// A missing version below the highest file is drift; build it by hand.
	setWithout2 := testSet(t, map[string]string{"001_a.sql": "SELECT 1;", "003_c.sql": "SELECT 3;"})
	missing := []Applied{
		{Version: 1, Name: "a", Checksum: setWithout2.Find(1).Up.Checksum, State: StateApplied},
		{Version: 2, Name: "b", Checksum: "x", State: StateApplied},
	}
	_, err := PlanUp(setWithout2, missing, UpOptions{})
	var de *DriftError
	if !errors.As(err, &de) || len(de.Missing) != 1 || !strings.Contains(err.Error(), "file is gone") {
		t.Fatalf("missing below highest: err = %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := PlanUp(set, tt.applied, UpOptions{})
			var de *DriftError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want *DriftError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestPlanUpNewerDatabaseWarns(t *testing.T) {
	set := testSet(t, threeFiles)
	rows := append(applied(set, 1, 2, 3), Applied{Version: 4, Name: "from_newer_release", State: StateApplied})
	p, err := PlanUp(set, rows, UpOptions{})
	if err != nil {
		t.Fatalf("an applied version above every file must only warn: %v", err)
	}
	if len(p.Steps) != 0 || len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "version 4") {
		t.Fatalf("plan = %+v", p)
	}
}

func TestPlanUpResumesPartial(t *testing.T) {
	files := map[string]string{"001_ix.sql": "-- dbinit:no-transaction\nCREATE INDEX CONCURRENTLY a ON t (a);\nCREATE INDEX CONCURRENTLY b ON t (b);\nCREATE INDEX CONCURRENTLY c ON t (c);"}
	set := testSet(t, files)
	s := set.Find(1).Up
	row := Applied{Version: 1, Name: "ix", Checksum: s.Checksum, State: StatePartial, StatementsDone: 2, PrefixChecksum: prefixChecksum(s, 2)}
	p, err := PlanUp(set, []Applied{row}, UpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Steps) != 1 || p.Steps[0].ResumeAt != 2 {
		t.Fatalf("plan = %+v", p.Steps)
	}
	// The failed statement itself may be fixed: still resumes.
	files["001_ix.sql"] = strings.Replace(files["001_ix.sql"], "(c)", "(c, d)", 1)
	fixed := testSet(t, files)
	if p, err := PlanUp(fixed, []Applied{row}, UpOptions{}); err != nil || p.Steps[0].ResumeAt != 2 {
		t.Fatalf("fixing the failed statement must resume: %v", err)
	}
	// A statement that already ran changed: refuse.
	files["001_ix.sql"] = strings.Replace(files["001_ix.sql"], "(a)", "(a, z)", 1)
	edited := testSet(t, files)
	_, err = PlanUp(edited, []Applied{row}, UpOptions{})
	var de *DriftError
	if !errors.As(err, &de) || len(de.Partial) != 1 || !strings.Contains(err.Error(), "statement 3 onwards") {
		t.Fatalf("err = %v", err)
	}
}

func TestPlanDown(t *testing.T) {
	set := testSet(t, threeFiles)
	p, err := PlanDown(set, applied(set, 1, 2), DownOptions{Steps: 1})
	if err != nil || !equalInts(stepVersions(p), []int64{2}) || !p.Steps[0].Down {
		t.Fatalf("steps 1: %v %v", err, p)
	}
	p, err = PlanDown(set, applied(set, 1, 2), DownOptions{To: 0})
	if err != nil || !equalInts(stepVersions(p), []int64{2, 1}) {
		t.Fatalf("to 0: %v %v", err, p)
	}
	// 3 has no down file: refused before anything runs, even though 2 and 1 have one.
	_, err = PlanDown(set, applied(set, 1, 2, 3), DownOptions{To: 0})
	var pe *PlanError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "db/003_c.sql has no down file db/003_c_down.sql") {
		t.Fatalf("err = %v", err)
	}
}

func TestStatus(t *testing.T) {
	set := testSet(t, threeFiles)
	rows := applied(set, 1, 3)
	rows[1].Checksum = "changed"
	rows = append(rows, Applied{Version: 9, Name: "gone", State: StateApplied})
	got := map[int64]State{}
	for _, e := range Status(set, rows) {
		got[e.Version] = e.State
	}
	want := map[int64]State{1: StateApplied, 2: StatePending, 3: StateChanged, 9: StateMissing}
	for v, s := range want {
		if got[v] != s {
			t.Errorf("version %d: %s, want %s", v, got[v], s)
		}
	}
}
