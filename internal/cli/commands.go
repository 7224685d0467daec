package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/config"
	"github.com/savvi-studio/dbinit/internal/dbconn"
	"github.com/savvi-studio/dbinit/migrate"
)

var commands = map[string]command{
	"init":     cmdInit,
	"wait":     cmdWait,
	"up":       cmdUp,
	"down":     cmdDown,
	"status":   cmdStatus,
	"plan":     cmdPlan,
	"clone":    cmdClone,
	"new":      cmdNew,
	"baseline": cmdBaseline,
	"accept":   cmdAccept,
	"snapshot": cmdSnapshot,
}

func noArgs(name string, args []string) error {
	if len(args) > 0 {
		return &usageError{fmt.Sprintf("dbinit %s takes no arguments, got %q", name, args)}
	}
	return nil
}

func cmdWait(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("wait", args); err != nil {
			return err
		}
		conn, err := r.connectMaintenance(ctx)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		r.log.Info("server is accepting connections", "target", dbconn.Target(conn.Config()))
		return nil
	}
}

func cmdUp(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	to := fs.Int64("to", 0, "apply up to and including this version")
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("up", args); err != nil {
			return err
		}
		start := time.Now()
		srv, target, closeAll, err := r.server(ctx)
		if err != nil {
			return err
		}
		defer closeAll()
		out, err := srv.Update(ctx, target, r.cfg.Database, *to)
		if err == nil {
			r.log.Info("up done", "database", r.cfg.Database, "database_state", out.State, "files", out.FilesApplied,
				"duration_ms", time.Since(start).Milliseconds())
		}
		return err
	}
}

func cmdDown(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	to := fs.Int64("to", -1, "revert every version above this one (0 = all)")
	steps := fs.Int("steps", 0, "revert this many of the most recent versions")
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("down", args); err != nil {
			return err
		}
		if (*to >= 0) == (*steps > 0) {
			return &usageError{"dbinit down needs exactly one of --to N or --steps K (K > 0)"}
		}
		opts := migrate.DownOptions{Steps: *steps}
		if *to >= 0 {
			opts.To = *to
		}
		return r.migrateWith(ctx, "down", func(s *session) (*migrate.Result, error) {
			return s.migrator.Down(ctx, s.target, opts)
		})
	}
}

func cmdStatus(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("status", args); err != nil {
			return err
		}
		set, applied, exists, verified, err := r.readAndVerify(ctx, true)
		if err != nil {
			return err
		}
		entries := migrate.Status(set, applied)
		if *asJSON {
			enc := json.NewEncoder(r.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(struct {
				Database string                `json:"database"`
				Exists   bool                  `json:"exists"`
				Dir      string                `json:"dir"`
				Latest   int64                 `json:"latest"`
				Verified *verification         `json:"verified,omitempty"`
				Entries  []migrate.StatusEntry `json:"migrations"`
			}{r.cfg.Database, exists, r.cfg.Dir, set.Latest(), verified, nonNil(entries)})
		}
		defer func() {
			if verified != nil && !verified.OK {
				fmt.Fprintf(r.stdout, "\nnot as the migrations promise:\n  %s\n", strings.Join(verified.Problems, "\n  "))
			}
		}()
		if !exists {
			fmt.Fprintf(r.stdout, "database %s does not exist yet\n", r.cfg.Database)
		}
		tw := tabwriter.NewWriter(r.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tSTATE\tFILE\tAPPLIED AT\tNOTE")
		for _, e := range entries {
			at := ""
			if e.AppliedAt != nil {
				at = e.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
			}
			file := e.File
			if file == "" {
				file = e.Name + " (no file)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", e.Version, e.State, file, at, note(e))
		}
		return tw.Flush()
	}
}

func note(e migrate.StatusEntry) string {
	var n []string
	if e.State == migrate.StatePartial {
		n = append(n, fmt.Sprintf("%d of %d statements ran", e.StatementsDone, e.Statements))
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

func cmdPlan(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	to := fs.Int64("to", 0, "plan up to and including this version")
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("plan", args); err != nil {
			return err
		}
		set, applied, exists, err := r.readHistory(ctx)
		if err != nil {
			return err
		}
		plan, err := migrate.PlanUp(set, applied, migrate.UpOptions{To: *to, AllowOutOfOrder: r.cfg.AllowOutOfOrder})
		if err != nil {
			return err
		}
		for _, w := range plan.Warnings {
			fmt.Fprintln(r.stdout, "warning:", w)
		}
		if !exists {
			fmt.Fprintf(r.stdout, "database %s does not exist; up creates it\n", r.cfg.Database)
		}
		if len(plan.Steps) == 0 {
			fmt.Fprintf(r.stdout, "%s is up to date; nothing to apply\n", r.cfg.Database)
			return nil
		}
		fmt.Fprintf(r.stdout, "up would apply %d file(s) to %s:\n", len(plan.Steps), r.cfg.Database)
		for _, st := range plan.Steps {
			mode := "transaction"
			if st.Script.NoTransaction {
				mode = "no-transaction"
			}
			extra := ""
			if st.ResumeAt > 0 {
				extra = fmt.Sprintf(", resuming at statement %d", st.ResumeAt+1)
			}
			fmt.Fprintf(r.stdout, "  %s  (%d statements, %s%s)\n", st.Script.Path, len(st.Script.Statements), mode, extra)
		}
		return nil
	}
}

func cmdBaseline(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	v := fs.Int64("version", 0, "record every file up to this version as applied")
	force := fs.Bool("force", false, "also on a database with a history, which would mark files it lacks as applied")
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("baseline", args); err != nil {
			return err
		}
		if *v <= 0 {
			return &usageError{"dbinit baseline needs --version N (N > 0)"}
		}
		return r.migrateWith(ctx, "baseline", func(s *session) (*migrate.Result, error) {
			return s.migrator.Baseline(ctx, s.target, migrate.BaselineOptions{Version: *v, Force: *force})
		})
	}
}

func cmdAccept(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	return func(ctx context.Context, r *run, args []string) error {
		if len(args) != 1 {
			return &usageError{"dbinit accept needs exactly one VERSION"}
		}
		v, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || v <= 0 {
			return &usageError{fmt.Sprintf("dbinit accept: %q is not a version number", args[0])}
		}
		return r.migrateWith(ctx, "", func(s *session) (*migrate.Result, error) {
			return nil, s.migrator.Accept(ctx, s.target, v)
		})
	}
}

func cmdNew(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	return func(ctx context.Context, r *run, args []string) error {
		if len(args) != 1 {
			return &usageError{"dbinit new needs exactly one NAME, e.g. dbinit new add_users"}
		}
		up, down, err := migrate.Scaffold(os.DirFS(r.cfg.Dir), args[0])
		var nameErr *migrate.NameError
		if errors.As(err, &nameErr) {
			return &usageError{"dbinit new: " + err.Error()}
		}
		if err != nil {
			return &config.Error{Msg: fmt.Sprintf("migrations folder %s: %v", r.cfg.Dir, err)}
		}
		for _, f := range []migrate.NewFile{up, down} {
			path := filepath.Join(r.cfg.Dir, f.Name)
			if err := writeNew(path, f.Text); err != nil {
				return err
			}
			fmt.Fprintln(r.stdout, path)
		}
		return nil
	}
}

// writeNew writes a file that must not exist yet.
func writeNew(path, text string) error {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return &config.Error{Msg: fmt.Sprintf("new: %v", err)}
	}
	_, werr := file.WriteString(text)
	if cerr := file.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("new: write %s: %w", path, werr)
	}
	return nil
}

// migrateWith runs one migrator call on the working database and logs what
// it did.
func (r *run) migrateWith(ctx context.Context, what string, f func(*session) (*migrate.Result, error)) error {
	s, err := r.session(ctx)
	if err != nil {
		return err
	}
	defer s.close(ctx)
	res, err := f(s)
	r.summary(what, res, err)
	return err
}

// summary logs what a run did.
func (r *run) summary(what string, res *migrate.Result, err error) {
	if res == nil || what == "" {
		return
	}
	if err == nil {
		r.log.Info(what+" done", "database", res.Database, "files", len(res.FilesExecuted), "duration_ms", res.Duration.Milliseconds())
		return
	}
	r.log.Error(what+" failed", "database", res.Database, "files", len(res.FilesExecuted), "duration_ms", res.Duration.Milliseconds())
}

// session is what the commands that change a working database share: the
// loaded folder, the server with its locks, and a connection to the working
// database.
type session struct {
	target   *pgx.Conn
	closeAll func()
	migrator *migrate.Migrator
}

func (s *session) close(ctx context.Context) {
	if s.target != nil {
		s.target.Close(context.WithoutCancel(ctx))
	}
	if s.closeAll != nil {
		s.closeAll()
	}
}

// session loads the folder first (a bad folder never touches a database),
// then connects.
func (r *run) session(ctx context.Context) (*session, error) {
	srv, target, closeAll, err := r.server(ctx)
	if err != nil {
		return nil, err
	}
	s := &session{closeAll: closeAll}
	fail := func(err error) (*session, error) {
		s.close(ctx)
		return nil, err
	}
	if err := srv.Reserved(r.cfg.Database); err != nil {
		return fail(err)
	}
	s.migrator, err = migrate.New(target.Set, migrate.Options{Logger: r.log, Locker: target.Lock(r.cfg.Database), Version: version(),
		DDLLockTimeout: r.cfg.DDLLockTimeout, DDLRetryTimeout: r.cfg.DDLRetryTimeout, StatementTimeout: r.cfg.StatementTimeout})
	if err != nil {
		return fail(err)
	}
	if s.target, err = r.connectTo(srv.Conn())(ctx, r.cfg.Database); err != nil {
		return fail(err)
	}
	return s, nil
}

func (r *run) connectMaintenance(ctx context.Context) (*pgx.Conn, error) {
	cc, err := r.cfg.ConnConfig()
	if err != nil {
		return nil, err
	}
	conn, err := dbconn.Connect(ctx, cc, dbconn.Options{Timeout: r.cfg.WaitTimeout, Logger: r.log, AcceptInitServer: r.acceptInitServer()})
	var noDB *dbconn.NoDatabaseError
	if errors.As(err, &noDB) {
		return nil, fmt.Errorf("maintenance database (set it in DATABASE_URL or PGDATABASE): %w", err)
	}
	return conn, err
}

// acceptInitServer is set by the postgres image's entrypoint, where dbinit
// runs against the temporary first-start server on purpose.
func (r *run) acceptInitServer() bool {
	return r.cfg.EntrypointMode
}

// readHistory loads the folder (before connecting) and reads the working
// database's history, for status and plan, which change nothing: a database
// that does not exist has no history.
func (r *run) readHistory(ctx context.Context) (*migrate.Set, []migrate.Applied, bool, error) {
	set, applied, exists, _, err := r.readAndVerify(ctx, false)
	return set, applied, exists, err
}

// verification is what status says of migrate.Verify.
type verification struct {
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// readAndVerify is readHistory, and with verify also the state Verify
// checks (nil when the database does not exist).
func (r *run) readAndVerify(ctx context.Context, verify bool) (*migrate.Set, []migrate.Applied, bool, *verification, error) {
	set, err := migrate.LoadDir(r.cfg.Dir)
	if err != nil {
		return nil, nil, false, nil, err
	}
	cc, err := r.cfg.ConnConfig()
	if err != nil {
		return nil, nil, false, nil, err
	}
	conn, err := dbconn.Connect(ctx, dbconn.ForDatabase(cc, r.cfg.Database), dbconn.Options{Timeout: r.cfg.WaitTimeout, Logger: r.log, AcceptInitServer: r.acceptInitServer()})
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
	// What is applied must be as the files say; what is pending is for up.
	v := &verification{OK: true}
	if len(applied) == 0 {
		return set, applied, true, v, nil
	}
	var highest int64
	for _, a := range applied {
		highest = max(highest, a.Version)
	}
	var ve *migrate.VerifyError
	switch err := migrate.Verify(ctx, conn, set, highest); {
	case errors.As(err, &ve):
		v.OK, v.Problems = false, ve.Problems
	case err != nil:
		return nil, nil, false, nil, err
	}
	return set, applied, true, v, nil
}
