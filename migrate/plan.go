package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Applied is one row of a database's history.
type Applied struct {
	Version         int64
	Name            string
	Checksum        string // of the file when it was applied (or accepted)
	ChecksumKind    string // ChecksumText, or ChecksumBytes for rows from before history format 2
	State           State  // StateApplied or StatePartial
	StatementsDone  int    // no-transaction files: statements that succeeded
	StatementsTotal int
	PrefixChecksum  string // partial rows: checksum of the statements that succeeded
	AppliedAt       time.Time
	ExecutionMS     int64
	AppliedBy       string
	Replaces        string // a squashed file's row: the versions it replaces, "1-7"
	ReplacedBy      int64  // StateReplaced rows: the squashed file's version
	// RecordedOver: a squashed file recorded over the files it replaced
	// (Name and Checksum are the squashed file's); Replaced is the row as
	// the last replaced file recorded it, which a rollback to the release
	// before the squash finds.
	RecordedOver bool
	Replaced     *Applied
}

// baselineMark ends the runner on the rows Baseline records: applied_by
// reads "postgres (host pid 42, baseline)".
const baselineMark = ", baseline"

// Baselined reports whether the row was recorded by Baseline: the file was
// never run by dbinit.
func (a Applied) Baselined() bool { return strings.HasSuffix(a.AppliedBy, baselineMark+")") }

// State is what status says of one version.
type State string

// The states a version can be in.
const (
	StateApplied State = "applied" // recorded and the file is unchanged
	StatePending State = "pending" // file present, not recorded
	StateChanged State = "changed" // recorded, but the file's checksum differs (drift)
	StateMissing State = "missing" // recorded, but there is no file
	StatePartial State = "partial" // a no-transaction file stopped part-way
	// StateReplaced: applied, then replaced by a squashed file (its file
	// moved out of the folder).
	StateReplaced State = "replaced"
)

// StatusEntry describes one version for `dbinit status`.
type StatusEntry struct {
	Version         int64      `json:"version"`
	Name            string     `json:"name"`
	File            string     `json:"file,omitempty"` // inside the folder, "007_add_users.sql"; "" for missing versions
	Path            string     `json:"path,omitempty"` // as shown to users, "db/007_add_users.sql"
	State           State      `json:"state"`
	AppliedAt       *time.Time `json:"applied_at,omitempty"`
	ExecutionMS     int64      `json:"execution_ms,omitempty"`
	AppliedBy       string     `json:"applied_by,omitempty"`
	Baseline        bool       `json:"baseline,omitempty"`         // recorded by baseline, never run by dbinit
	Checksum        string     `json:"checksum,omitempty"`         // of the file on disk
	AppliedChecksum string     `json:"applied_checksum,omitempty"` // recorded in the history
	StatementsDone  int        `json:"statements_done,omitempty"`
	Statements      int        `json:"statements,omitempty"`
	HasDown         bool       `json:"has_down"`
	OutOfOrder      bool       `json:"out_of_order,omitempty"` // pending below the highest applied version
	NoTransaction   bool       `json:"no_transaction,omitempty"`
	Replaces        string     `json:"replaces,omitempty"`    // a squashed file: the versions it stands for
	ReplacedBy      int64      `json:"replaced_by,omitempty"` // replaced versions (or applied ones up replaces): the squashed file's version
	// ReplaceOnUp: the database has every version this squashed file
	// replaces, applied one by one; up records the squashed file over them
	// without running it.
	ReplaceOnUp bool `json:"replace_on_up,omitempty"`
}

// Status compares the folder with the history, version by version.
func Status(set *Set, applied []Applied) []StatusEntry {
	byVersion := map[int64]Applied{}
	var highest int64
	for _, a := range applied {
		byVersion[a.Version] = a
		highest = max(highest, a.Version)
	}
	var out []StatusEntry
	for _, m := range set.Migrations {
		e := StatusEntry{Version: m.Version, Name: m.Name, File: m.Up.File, Path: m.Up.Path, Checksum: m.Up.Checksum,
			Statements: len(m.Up.Statements), HasDown: m.Down != nil, NoTransaction: m.Up.NoTransaction}
		e.Replaces = m.replaces()
		a, ok := byVersion[m.Version]
		delete(byVersion, m.Version)
		switch {
		case !ok:
			e.State = StatePending
			e.OutOfOrder = m.Version < highest
		case a.State == StatePartial:
			e.State = StatePartial
		case replaceOnUp(m, a):
			e.State, e.ReplaceOnUp = StatePending, true
		case !m.Up.Matches(a):
			e.State = StateChanged
		default:
			e.State = StateApplied
		}
		if ok {
			e.fillApplied(a)
		}
		out = append(out, e)
	}
	for _, a := range byVersion {
		e := StatusEntry{Version: a.Version, Name: a.Name, State: StateMissing}
		if sq := set.replaced(a.Version); sq != nil {
			switch a.State {
			case StateReplaced:
				e.State, e.ReplacedBy = StateReplaced, sq.Version
			case StateApplied:
				// The squashed file is recorded over it at the next up.
				e.State, e.ReplacedBy = StateApplied, sq.Version
			}
		}
		e.fillApplied(a)
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b StatusEntry) int { return cmpInt64(a.Version, b.Version) })
	return out
}

// Summary counts the entries of Status by state.
type Summary struct {
	Version  int64 `json:"version"` // highest applied (or partial) version; 0 when none
	Applied  int   `json:"applied"`
	Pending  int   `json:"pending"`
	Changed  int   `json:"changed"`
	Missing  int   `json:"missing"`
	Partial  int   `json:"partial"`
	Replaced int   `json:"replaced"`
}

// Summarize counts entries by state.
func Summarize(entries []StatusEntry) Summary {
	var s Summary
	for _, e := range entries {
		switch e.State {
		case StateApplied:
			s.Applied++
		case StatePending:
			s.Pending++
		case StateChanged:
			s.Changed++
		case StateMissing:
			s.Missing++
		case StatePartial:
			s.Partial++
		case StateReplaced:
			s.Replaced++
		}
		if e.State != StatePending && e.State != StateReplaced {
			s.Version = max(s.Version, e.Version)
		}
	}
	return s
}

func (e *StatusEntry) fillApplied(a Applied) {
	t := a.AppliedAt
	e.AppliedAt = &t
	e.ExecutionMS = a.ExecutionMS
	e.AppliedBy = a.AppliedBy
	e.Baseline = a.Baselined()
	e.AppliedChecksum = a.Checksum
	e.StatementsDone = a.StatementsDone
	if a.ReplacedBy != 0 {
		e.ReplacedBy = a.ReplacedBy
	}
	if a.StatementsTotal > 0 {
		e.Statements = a.StatementsTotal
	}
}

// Step is one file to run.
type Step struct {
	Migration *Migration
	Script    *Script // Migration.Up, or Migration.Down when Down
	Down      bool
	ResumeAt  int // index of the first statement to run (no-transaction files resumed after a failure)
	// Replace: a squashed file recorded over the history of the files it
	// replaces, without running it (they are all applied).
	Replace bool
}

// replaceOnUp reports whether a is the row of the last file a squashed
// migration m replaces, applied before the squash: up records m over the
// replaced rows instead of running it (when they are the files it was made
// from).
func replaceOnUp(m *Migration, a Applied) bool {
	return m.Up.Replaces != nil && a.State == StateApplied && a.Replaces == ""
}

// replacement decides whether the squashed migration m can be recorded
// over rows, the history rows in its range: only when they are exactly the
// files it replaced (name and checksum), all applied. A row that is not
// one of them is drift; missing ones are a problem (apply them first).
func replacement(set *Set, m *Migration, rows []Applied) (replace bool, warnings []string, changed []DriftItem, problem string) {
	r := m.Up.Replaces
	if len(m.Up.ReplacedFiles) == 0 {
		return false, nil, nil, fmt.Sprintf("%s replaces versions %s, and this database has some of them applied, but dbinit cannot check that they are the files it replaced: "+
			"the file has no dbinit:replaced lines and %s/%s/ does not hold them; write it with dbinit squash, or put the replaced files in %s/",
			m.Up.Path, r, set.Dir, squashedDir, squashedDir)
	}
	listed := map[int64]ReplacedFile{}
	for _, f := range m.Up.ReplacedFiles {
		listed[f.Version] = f
	}
	have := map[int64]bool{}
	var partial []string
	for _, row := range rows {
		f, ok := listed[row.Version]
		item := DriftItem{Version: row.Version, File: fmt.Sprintf("version %d (%s)", row.Version, row.Name)}
		switch {
		case !ok:
			item.Msg = fmt.Sprintf("is applied, but is not one of the files %s replaces: recording the squashed file would drop it from the history; renumber the squash, or deal with this version first", m.Up.Path)
		case row.State == StatePartial:
			partial = append(partial, strconv.FormatInt(row.Version, 10))
			continue
		case row.State != StateApplied:
			item.Msg = fmt.Sprintf("is %s (by version %d), not applied: squashed files do not nest; squash from above the earlier squashed file", row.State, row.ReplacedBy)
		case row.Name != f.Name:
			item.Msg = fmt.Sprintf("is applied as %q, but %s replaces %q at that version: the database does not have the files the squash was made from", row.Name, m.Up.Path, f.Name)
		case row.ChecksumKind == ChecksumText && !strings.HasPrefix(row.Checksum, f.Checksum) && !strings.HasPrefix(f.Checksum, row.Checksum):
			item.Msg = fmt.Sprintf("was applied with checksum %s, but %s replaces it as %s: the file was edited after this database ran it", short(row.Checksum), m.Up.Path, short(f.Checksum))
		default:
			if row.ChecksumKind != ChecksumText {
				warnings = append(warnings, fmt.Sprintf("version %d was recorded by a dbinit before history format 2; it is checked against %s by name only", row.Version, m.Up.Path))
			}
			have[row.Version] = true
			continue
		}
		changed = append(changed, item)
	}
	if len(changed) > 0 {
		return false, warnings, changed, ""
	}
	var got, lack []string
	for _, f := range m.Up.ReplacedFiles {
		if have[f.Version] {
			got = append(got, strconv.FormatInt(f.Version, 10))
		} else {
			lack = append(lack, strconv.FormatInt(f.Version, 10))
		}
	}
	if len(partial) > 0 || len(lack) > 0 {
		return false, warnings, nil, fmt.Sprintf("%s replaces versions %s, and the database has only some of them (%s; not %s): "+
			"apply the missing ones with the previous release's files first (dbinit squash kept them in %s/%s/), then this release records the squashed file over them",
			m.Up.Path, r, strings.Join(got, ", "), strings.Join(append(partial, lack...), ", "), set.Dir, squashedDir)
	}
	return true, warnings, nil, ""
}

// Plan is what a run will do.
type Plan struct {
	Steps    []Step
	Warnings []string // things worth saying that do not stop the run
}

// UpOptions select what PlanUp plans and Migrator.Up applies.
type UpOptions struct {
	To              int64 // apply versions up to and including To; 0 = all
	AllowOutOfOrder bool  // apply a new file below the highest applied version
}

// PlanUp decides what `up` runs. It returns a *DriftError, and plans nothing,
// when the history and the folder disagree in a way that needs a human.
func PlanUp(set *Set, applied []Applied, opts UpOptions) (*Plan, error) {
	plan := &Plan{}
	var todo, problems []string
	drift := checkDrift(set, applied, plan)
	byVersion := indexApplied(applied)
	var highest int64
	for _, a := range applied {
		highest = max(highest, a.Version)
	}
	for _, m := range set.Migrations {
		if opts.To > 0 && m.Version > opts.To {
			break
		}
		a, ok := byVersion[m.Version]
		if r := m.Up.Replaces; r != nil && (!ok || replaceOnUp(m, a)) {
			// A squashed file: it runs on a database that has none of the
			// versions it replaces, and is recorded over them on one that
			// has exactly the files it was made from; anything else is
			// refused.
			var inRange []Applied
			for _, row := range applied {
				if r.Contains(row.Version) {
					inRange = append(inRange, row)
				}
			}
			if len(inRange) > 0 {
				replace, warnings, changed, problem := replacement(set, m, inRange)
				plan.Warnings = append(plan.Warnings, warnings...)
				drift.Changed = append(drift.Changed, changed...)
				if problem != "" {
					problems = append(problems, problem)
				}
				if replace {
					plan.Steps = append(plan.Steps, Step{Migration: m, Script: m.Up, Replace: true})
				}
				continue
			}
		}
		switch {
		case !ok:
			if m.Version < highest && !opts.AllowOutOfOrder {
				drift.OutOfOrder = append(drift.OutOfOrder, DriftItem{Version: m.Version, File: m.Up.Path,
					Msg: fmt.Sprintf("is new but version %d is already applied; renumber it above %d, or set DBINIT_ALLOW_OUT_OF_ORDER=true", highest, highest)})
				continue
			}
			if m.Up.Todo {
				todo = append(todo, m.Up.Path+" "+todoMsg)
				continue
			}
			plan.Steps = append(plan.Steps, Step{Migration: m, Script: m.Up})
		case a.State == StatePartial:
			at, err := resumePoint(m, a)
			if err != "" {
				drift.Partial = append(drift.Partial, DriftItem{Version: m.Version, File: m.Up.Path, Msg: err})
				continue
			}
			plan.Steps = append(plan.Steps, Step{Migration: m, Script: m.Up, ResumeAt: at})
		}
	}
	if drift.any() {
		return nil, drift
	}
	problems = append(problems, todo...)
	problems = append(problems, unmetDependencies(applied, plan)...)
	if len(problems) > 0 {
		return nil, &PlanError{Problems: problems}
	}
	return plan, nil
}

// unmetDependencies lists the steps of an up plan whose depends_on
// versions are neither applied nor planned before them.
func unmetDependencies(applied []Applied, plan *Plan) []string {
	done := map[int64]bool{}
	for _, a := range applied {
		if a.State == StateApplied || a.State == StateReplaced {
			done[a.Version] = true
		}
	}
	var problems []string
	for _, st := range plan.Steps {
		for _, d := range st.Migration.DependsOn {
			if !done[d] {
				problems = append(problems, fmt.Sprintf("%s depends on version %d (depends_on in %s), which is neither applied nor applied before it in this run", st.Script.Path, d, ManifestFile))
			}
		}
		done[st.Migration.Version] = true
		for _, f := range st.Migration.Up.ReplacedFiles {
			done[f.Version] = true
		}
	}
	return problems
}

// DownOptions select what PlanDown reverts: exactly one of To and Steps.
type DownOptions struct {
	To    int64 // revert every applied version above To (0 = all)
	Steps int   // revert the Steps most recent versions
}

// PlanDown decides what `down` runs. Every down file needed must exist before
// the first one runs; a missing one is a *PlanError.
func PlanDown(set *Set, applied []Applied, opts DownOptions) (*Plan, error) {
	plan := &Plan{}
	if drift := checkDrift(set, applied, plan); drift.any() {
		return nil, drift
	}
	// Rows a squashed file replaced go with it; they are not reverted one by one.
	rows := slices.DeleteFunc(slices.Clone(applied), func(a Applied) bool { return a.State == StateReplaced })
	slices.SortFunc(rows, func(a, b Applied) int { return cmpInt64(b.Version, a.Version) })
	var problems []string
	for i, a := range rows {
		if opts.Steps > 0 && i >= opts.Steps {
			break
		}
		if opts.Steps == 0 && a.Version <= opts.To {
			break
		}
		m := set.Find(a.Version)
		switch {
		case m != nil && replaceOnUp(m, a), m == nil && set.replaced(a.Version) != nil:
			sq := m
			if sq == nil {
				sq = set.replaced(a.Version)
			}
			problems = append(problems, fmt.Sprintf("version %d (%s) was applied before %s squashed it, which is not recorded yet: run `dbinit up` first (it records the squashed file), or revert with the previous release's files",
				a.Version, a.Name, sq.Up.Path))
		case m != nil && m.Up.Replaces != nil && opts.Steps == 0 && opts.To >= m.Up.Replaces.From && opts.To < m.Version:
			problems = append(problems, fmt.Sprintf("--to %d is inside the versions %s replaces (%s): down reverts the squashed file as a whole; use --to %d or --to %d",
				opts.To, m.Up.Path, m.Up.Replaces, m.Up.Replaces.From-1, m.Version))
		case a.State == StatePartial:
			problems = append(problems, fmt.Sprintf("version %d is only partially applied; finish it with `dbinit up` (or repair it by hand) before reverting it", a.Version))
		case m == nil:
			// checkDrift let it through only because it is above every file.
			problems = append(problems, fmt.Sprintf("version %d (%s) has no files in %s, so there is no down file to run", a.Version, a.Name, set.Dir))
		case m.Down == nil && len(m.Up.Statements) == 0:
			// An empty up file (kept for numbering) has nothing to undo:
			// reverting it only removes its history row.
			plan.Steps = append(plan.Steps, Step{Migration: m, Script: &Script{File: m.Up.File, Path: m.Up.Path}, Down: true})
		case m.Down == nil:
			problems = append(problems, fmt.Sprintf("%s has no down file %s", m.Up.Path, strings.TrimSuffix(m.Up.Path, ".sql")+"_down.sql"))
		case m.Down.Todo:
			problems = append(problems, m.Down.Path+" "+todoMsg)
		default:
			plan.Steps = append(plan.Steps, Step{Migration: m, Script: m.Down, Down: true})
		}
	}
	if len(problems) > 0 {
		return nil, &PlanError{Problems: problems}
	}
	return plan, nil
}

// checkDrift finds applied files that changed and applied versions that have
// no file. An applied version above every file is only a warning: an older
// image started after a newer one migrated the database.
func checkDrift(set *Set, applied []Applied, plan *Plan) *DriftError {
	drift := &DriftError{Dir: set.Dir}
	latest := set.Latest()
	byVersion := indexApplied(applied)
	for _, a := range applied {
		m := set.Find(a.Version)
		sq := set.replaced(a.Version)
		pending := false // sq is not recorded yet: PlanUp checks the rows it replaces
		if sq != nil {
			row, ok := byVersion[sq.Version]
			pending = !ok || replaceOnUp(sq, row)
		}
		switch {
		case m == nil && sq != nil && a.State == StateReplaced && a.ReplacedBy == sq.Version:
		case m == nil && sq != nil && pending:
		case m != nil && replaceOnUp(m, a):
		case m == nil && a.Version > latest:
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("version %d (%s) is applied but newer than every file in %s; was the database migrated by a newer release?", a.Version, a.Name, set.Dir))
		case m == nil:
			drift.Missing = append(drift.Missing, DriftItem{Version: a.Version, File: a.Name,
				Msg: fmt.Sprintf("is applied but its file is gone from %s; restore it", set.Dir)})
		case a.State == StateApplied && !m.Up.Matches(a):
			drift.Changed = append(drift.Changed, DriftItem{Version: a.Version, File: m.Up.Path,
				Msg: fmt.Sprintf("changed after it was applied (applied %s, now %s); restore it, or run `dbinit accept %d` if the edit is deliberate", short(a.Checksum), short(m.Up.Checksum), a.Version)})
		}
	}
	return drift
}

// resumePoint says where a partially applied no-transaction file resumes, or
// why it cannot.
func resumePoint(m *Migration, a Applied) (int, string) {
	s := m.Up
	switch {
	case !s.NoTransaction:
		return 0, fmt.Sprintf("stopped after %d statements as a no-transaction file, but the file no longer has %q; put the directive back to resume it", a.StatementsDone, directiveNoTransaction)
	case a.StatementsDone > len(s.Statements):
		return 0, fmt.Sprintf("stopped after %d statements, but the file now has only %d; restore it, or repair the database by hand and delete its row from dbinit.schema_migrations", a.StatementsDone, len(s.Statements))
	case prefixChecksum(s, a.StatementsDone) != a.PrefixChecksum:
		return 0, fmt.Sprintf("stopped after %d statements and some of those statements changed since, so it is unknown what ran; restore them (only statement %d onwards may change), or repair the database by hand and delete its row from dbinit.schema_migrations", a.StatementsDone, a.StatementsDone+1)
	}
	return a.StatementsDone, ""
}

// prefixChecksum is the checksum of a script's first n statements, ignoring
// the comments and white space before each: what must be unchanged for a
// partial file to resume.
func prefixChecksum(s *Script, n int) string {
	h := sha256.New()
	for _, st := range s.Statements[:n] {
		h.Write([]byte(st.Text[st.Start:]))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func indexApplied(applied []Applied) map[int64]Applied {
	m := make(map[int64]Applied, len(applied))
	for _, a := range applied {
		m[a.Version] = a
	}
	return m
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}
