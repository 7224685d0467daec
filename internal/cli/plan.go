package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"github.com/savvi-studio/dbinit/migrate"
)

func cmdPlan(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	to := fs.Int64("to", -1, "up: plan up to and including this version; down: plan reverting every version above it (0 = all)")
	steps := fs.Int("steps", 0, "down: plan reverting this many of the most recent versions")
	withSQL := fs.Bool("sql", false, "print every statement that would run, with its file and line")
	asJSON := fs.Bool("json", false, "print JSON")
	return func(ctx context.Context, r *run, args []string) error {
		down := false
		switch {
		case len(args) == 1 && args[0] == "down":
			down = true
		case len(args) == 1 && args[0] == "up", len(args) == 0:
		default:
			return &usageError{fmt.Sprintf("plan: takes nothing, up or down, got %q", args)}
		}
		if down && (*to >= 0) == (*steps > 0) {
			return &usageError{"plan: down needs exactly one of --to N or --steps K (K > 0)"}
		}
		if !down && *steps != 0 {
			return &usageError{"plan: --steps is for plan down; plan (up) takes --to N"}
		}
		set, applied, exists, err := r.readHistory(ctx)
		if err != nil {
			return err
		}
		var plan *migrate.Plan
		if down {
			opts := migrate.DownOptions{Steps: *steps}
			if *to >= 0 {
				opts.To = *to
			}
			plan, err = migrate.PlanDown(set, applied, opts)
		} else {
			plan, err = migrate.PlanUp(set, applied, migrate.UpOptions{To: max(*to, 0), AllowOutOfOrder: r.cfg.AllowOutOfOrder})
		}
		if err != nil {
			return err
		}
		if *asJSON {
			return r.planJSON(plan, exists, down, *withSQL)
		}
		r.planText(plan, exists, down, *withSQL)
		return nil
	}
}

func (r *run) planText(plan *migrate.Plan, exists, down, withSQL bool) {
	w := r.stdout
	for _, warning := range plan.Warnings {
		fmt.Fprintln(w, "warning:", warning)
	}
	verb := "up would apply"
	if down {
		verb = "down would revert, newest first, with"
	}
	if !exists && !down {
		fmt.Fprintf(w, "database %s does not exist; up creates it\n", r.cfg.Database)
	}
	if len(plan.Steps) == 0 {
		if down {
			fmt.Fprintf(w, "%s: nothing to revert\n", r.cfg.Database)
		} else {
			fmt.Fprintf(w, "%s is up to date; nothing to apply\n", r.cfg.Database)
		}
		return
	}
	fmt.Fprintf(w, "%s %d file(s) on %s:\n", verb, len(plan.Steps), r.cfg.Database)
	for _, st := range plan.Steps {
		fmt.Fprintf(w, "  %s  (%s)\n", st.Script.Path, stepMode(st))
	}
	if !withSQL {
		return
	}
	for _, st := range plan.Steps {
		fmt.Fprintf(w, "\n-- %s (%s)\n", st.Script.Path, stepMode(st))
		if st.Replace {
			continue
		}
		if len(st.Script.Statements) == 0 {
			fmt.Fprintln(w, "-- no statements: recorded as a no-op")
		}
		for _, s := range st.Script.Statements[st.ResumeAt:] {
			fmt.Fprintf(w, "-- %s:%d\n%s\n", st.Script.Path, s.Line, strings.TrimRight(s.SQL(), " \t\r\n"))
		}
	}
}

func stepMode(st migrate.Step) string {
	if st.Replace {
		return fmt.Sprintf("squashed: recorded over versions %s, which are all applied, without running", st.Migration.Up.Replaces)
	}
	n := len(st.Script.Statements)
	mode := fmt.Sprintf("%d statement(s), one transaction with its history row", n)
	if st.Script.NoTransaction {
		mode = fmt.Sprintf("%d statement(s), no-transaction: each commits on its own", n)
	}
	if st.ResumeAt > 0 {
		mode += fmt.Sprintf("; resuming at statement %d", st.ResumeAt+1)
	}
	return mode
}

type planStatement struct {
	Line int    `json:"line"`
	SQL  string `json:"sql"`
}

type planStep struct {
	Version       int64           `json:"version"`
	Name          string          `json:"name"`
	File          string          `json:"file"`
	Path          string          `json:"path"`
	Down          bool            `json:"down"`
	Replace       bool            `json:"replace,omitempty"` // a squashed file recorded without running
	NoTransaction bool            `json:"no_transaction"`
	Statements    int             `json:"statements"`
	ResumeAt      int             `json:"resume_at,omitempty"` // 1-based statement a partial file resumes at
	SQL           []planStatement `json:"sql,omitempty"`       // with --sql
}

func (r *run) planJSON(plan *migrate.Plan, exists, down, withSQL bool) error {
	out := struct {
		Database  string     `json:"database"`
		Exists    bool       `json:"exists"`
		Direction string     `json:"direction"`
		Warnings  []string   `json:"warnings"`
		Steps     []planStep `json:"steps"`
	}{Database: r.cfg.Database, Exists: exists, Direction: "up", Warnings: nonNil(plan.Warnings), Steps: []planStep{}}
	if down {
		out.Direction = "down"
	}
	for _, st := range plan.Steps {
		ps := planStep{Version: st.Migration.Version, Name: st.Migration.Name, File: st.Script.File, Path: st.Script.Path,
			Down: st.Down, Replace: st.Replace, NoTransaction: st.Script.NoTransaction, Statements: len(st.Script.Statements)}
		if st.ResumeAt > 0 {
			ps.ResumeAt = st.ResumeAt + 1
		}
		if withSQL && !st.Replace {
			ps.SQL = []planStatement{}
			for _, s := range st.Script.Statements[st.ResumeAt:] {
				ps.SQL = append(ps.SQL, planStatement{Line: s.Line, SQL: s.SQL()})
			}
		}
		out.Steps = append(out.Steps, ps)
	}
	enc := json.NewEncoder(r.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
