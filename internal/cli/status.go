package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/savvi-studio/dbinit/internal/dbconn"
	"github.com/savvi-studio/dbinit/migrate"
)

func cmdStatus(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	exitCode := fs.Bool("exit-code", false, "exit 5 on drift and 7 when files are pending (for CI gates); 0 otherwise")
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("status", args); err != nil {
			return err
		}
		set, applied, exists, problems, err := r.readAndVerify(ctx, true)
		if err != nil {
			return err
		}
		entries := migrate.Status(set, applied)
		sum := migrate.Summarize(entries)
		gate := statusGate(set, applied, problems, sum)
		if *asJSON {
			enc := json.NewEncoder(r.stdout)
			enc.SetIndent("", "  ")
			err := enc.Encode(struct {
				Database string                `json:"database"`
				Exists   bool                  `json:"exists"`
				Dir      string                `json:"dir"`
				Latest   int64                 `json:"latest"`
				Summary  migrate.Summary       `json:"summary"`
				Drift    bool                  `json:"drift"`    // up would refuse to run, or the database is not as promised
				Problems []string              `json:"problems"` // beyond the states: INVALID indexes
				Entries  []migrate.StatusEntry `json:"migrations"`
			}{r.cfg.Database, exists, set.Dir, set.Latest(), sum, gate != nil && gate.code == ExitDrift, nonNil(problems), nonNil(entries)})
			if err != nil || !*exitCode {
				return err
			}
			return gateErr(gate)
		}
		w := r.stdout
		if !exists {
			fmt.Fprintf(w, "%s does not exist yet: up (or init) creates it; %d file(s) pending in %s\n\n", r.cfg.Database, sum.Pending, set.Dir)
		} else {
			fmt.Fprintf(w, "%s at version %d: %s (folder %s, latest %d)\n\n", r.cfg.Database, sum.Version, counts(sum), set.Dir, set.Latest())
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tSTATE\tFILE\tAPPLIED AT\tTOOK\tNOTE")
		for _, e := range entries {
			at, took := "", ""
			if e.AppliedAt != nil {
				at = e.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
				took = formatMS(e.ExecutionMS)
				if e.Baseline {
					took = "-"
				}
			}
			file := e.File
			switch {
			case file == "" && e.ReplacedBy != 0:
				file = e.Name + " (squashed)"
			case file == "":
				file = e.Name + " (no file)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Version, e.State, file, at, took, note(e))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(problems) > 0 {
			fmt.Fprintf(w, "\nnot as the migrations promise:\n  %s\n", strings.Join(problems, "\n  "))
		}
		if gate != nil && gate.code == ExitDrift && len(problems) == 0 {
			fmt.Fprintf(w, "\nup would refuse to run: %s\n", gate.msg)
		}
		if *exitCode {
			return gateErr(gate)
		}
		return nil
	}
}

// counts is the summary line's middle: "7 applied, 2 pending", and the
// states that need a human only when there are some.
func counts(s migrate.Summary) string {
	out := []string{fmt.Sprintf("%d applied", s.Applied), fmt.Sprintf("%d pending", s.Pending)}
	for _, c := range []struct {
		n    int
		what string
	}{{s.Changed, "changed"}, {s.Missing, "missing"}, {s.Partial, "partial"}, {s.Replaced, "replaced"}} {
		if c.n > 0 {
			out = append(out, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return strings.Join(out, ", ")
}

// statusGate is what status --exit-code reports: drift (what would stop up,
// or a database that is not as its applied files promise) before pending
// files (what up would apply); nil when up has nothing to do.
func statusGate(set *migrate.Set, applied []migrate.Applied, problems []string, sum migrate.Summary) *exitError {
	_, err := migrate.PlanUp(set, applied, migrate.UpOptions{})
	var drift *migrate.DriftError
	if errors.As(err, &drift) {
		return &exitError{code: ExitDrift, msg: drift.Error()}
	}
	if len(problems) > 0 {
		return &exitError{code: ExitDrift, msg: "the database is not as its applied migrations promise:\n  " + strings.Join(problems, "\n  ")}
	}
	if n := sum.Pending + sum.Partial; n > 0 {
		return &exitError{code: ExitPending, msg: fmt.Sprintf("%d file(s) pending; dbinit up applies them", n)}
	}
	return nil
}

// gateErr is the error status --exit-code ends with: one short line, as
// the report says the rest; nil when there is nothing to gate on.
func gateErr(e *exitError) error {
	if e == nil {
		return nil
	}
	what := "drift (up would refuse to run)"
	if e.code == ExitPending {
		what = "files are pending"
	}
	return &exitError{code: e.code, msg: fmt.Sprintf("status --exit-code: %s: exit %d", what, e.code)}
}

func formatMS(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	if d < time.Second {
		return strconv.FormatInt(ms, 10) + "ms"
	}
	return d.Round(100 * time.Millisecond).String()
}

func note(e migrate.StatusEntry) string {
	var n []string
	switch {
	case e.State == migrate.StateReplaced:
		n = append(n, fmt.Sprintf("replaced by the squashed version %d", e.ReplacedBy))
	case e.ReplacedBy != 0:
		n = append(n, fmt.Sprintf("file squashed into version %d: up marks it replaced", e.ReplacedBy))
	case e.ReplaceOnUp:
		n = append(n, fmt.Sprintf("squashed (replaces %s): up records it over those versions without running it", e.Replaces))
	case e.Replaces != "":
		n = append(n, "squashed: replaces "+e.Replaces)
	}
	if e.Baseline {
		n = append(n, "baseline: recorded, never run by dbinit")
	}
	if e.State == migrate.StatePartial {
		n = append(n, fmt.Sprintf("%d of %d statements ran; up resumes it", e.StatementsDone, e.Statements))
	}
	if e.OutOfOrder {
		n = append(n, "below the highest applied version")
	}
	if e.State == migrate.StateChanged {
		n = append(n, "checksum differs; restore the file or `dbinit accept "+strconv.FormatInt(e.Version, 10)+"`")
	}
	if e.NoTransaction {
		n = append(n, "no-transaction")
	}
	return strings.Join(n, "; ")
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// readHistory loads the folder (before connecting) and reads the working
// database's history, for status and plan, which change nothing: a database
// that does not exist has no history.
func (r *run) readHistory(ctx context.Context) (*migrate.Set, []migrate.Applied, bool, error) {
	set, applied, exists, _, err := r.readAndVerify(ctx, false)
	return set, applied, exists, err
}

// readAndVerify is readHistory, and with verify also the INVALID indexes
// migrate.Verify would report (the states are status's table).
func (r *run) readAndVerify(ctx context.Context, verify bool) (*migrate.Set, []migrate.Applied, bool, []string, error) {
	set, err := r.loadSet()
	if err != nil {
		return nil, nil, false, nil, err
	}
	cc, err := r.cfg.ConnConfig()
	if err != nil {
		return nil, nil, false, nil, err
	}
	conn, err := dbconn.Connect(ctx, dbconn.ForDatabase(cc, r.cfg.Database), r.connectOptions(r.cfg.WaitTimeout))
	var noDB *dbconn.NoDatabaseError
	if errors.As(err, &noDB) {
		return set, nil, false, nil, nil
	}
	if err != nil {
		return nil, nil, false, nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	applied, err := migrate.ReadHistory(ctx, conn)
	if err != nil || !verify {
		return set, applied, true, nil, err
	}
	problems, err := migrate.InvalidIndexes(ctx, conn, set)
	if err != nil {
		return nil, nil, false, nil, err
	}
	return set, applied, true, problems, nil
}
