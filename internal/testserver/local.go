package testserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	superuser = "postgres"
	dirPrefix = "dbinit-testserver-"
	logName   = "postgresql.log"
	confName  = "testserver.conf"
)

// clusterRoot is the directory in which cluster directories are created.
func clusterRoot() string {
	if d := os.Getenv(EnvTmpDir); d != "" {
		return d
	}
	return os.TempDir()
}

var errUnsupported = errors.New("local PostgreSQL clusters are not supported on this operating system; set TEST_DATABASE_URL")

// LocalOptions configures [StartLocal].
type LocalOptions struct {
	// BinDir holds pg_ctl, initdb and postgres; "" finds them as Get does.
	BinDir string
	// Durable keeps PostgreSQL's default durability. When false, fsync,
	// synchronous_commit and full_page_writes are off, which makes the
	// server faster but lets a crash (including Kill) lose recently
	// committed transactions.
	Durable bool
	// Password of the superuser "postgres"; "" generates a random one.
	Password string
	// Settings are extra postgresql.conf settings, e.g.
	// {"max_connections": "300"}. They override this package's defaults.
	Settings map[string]string
}

// Cluster is a throwaway PostgreSQL cluster run from local binaries. Its
// methods are safe for concurrent use.
type Cluster struct {
	binDir   string
	baseDir  string // everything lives under it; removed by Stop
	dataDir  string
	logFile  string
	password string
	durable  bool
	settings map[string]string
	ra       *runAs

	mu       sync.Mutex
	port     int
	version  int
	stopped  bool
	watchdog *exec.Cmd
}

// StartLocal starts a brand-new private cluster from local binaries, for
// tests that restart or kill the server or need other settings. The caller
// stops it with Stop; if the process exits first, a watchdog stops it and
// removes its directory.
func StartLocal(ctx context.Context, opts LocalOptions) (*Cluster, error) {
	if !localSupported {
		return nil, fmt.Errorf("testserver: %w", errUnsupported)
	}
	cleanupStaleOnce()
	if strings.ContainsAny(opts.Password, "\r\n\x00") {
		return nil, errors.New("testserver: the password must not contain line breaks or NUL")
	}
	if err := checkSettings(opts.Settings); err != nil {
		return nil, err
	}
	binDir := opts.BinDir
	if binDir == "" {
		d, err := findBinDir(os.Getenv, defaultBinGlobs)
		if err != nil {
			return nil, fmt.Errorf("testserver: no local PostgreSQL binaries: %w", err)
		}
		binDir = d
	} else if err := checkBinDir(binDir); err != nil {
		return nil, fmt.Errorf("testserver: %w", err)
	}
	ra, err := lookupRunAs()
	if err != nil {
		return nil, fmt.Errorf("testserver: %w", err)
	}
	base, err := os.MkdirTemp(clusterRoot(), fmt.Sprintf("%s%d-%d-", dirPrefix, os.Geteuid(), os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("testserver: %w", err)
	}
	c := newCluster(base, binDir, ra, opts)
	fail := func(err error) (*Cluster, error) {
		c.Stop(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("testserver: starting a local cluster from %s: %w", binDir, err)
	}
	if err := c.prepareBase(); err != nil {
		return fail(err)
	}
	wd, err := startWatchdog(os.Getpid(), base, c.dataDir)
	if err != nil {
		return fail(err)
	}
	c.watchdog = wd
	go wd.Wait() // reap it when Stop kills it
	if err := c.initdb(ctx); err != nil {
		return fail(err)
	}
	if err := c.startNew(ctx); err != nil {
		return fail(err)
	}
	return c, nil
}

func newCluster(base, binDir string, ra *runAs, opts LocalOptions) *Cluster {
	pw := opts.Password
	if pw == "" {
		pw = randomPassword()
	}
	data := filepath.Join(base, "data")
	return &Cluster{
		binDir:   binDir,
		baseDir:  base,
		dataDir:  data,
		logFile:  filepath.Join(data, logName),
		password: pw,
		durable:  opts.Durable,
		settings: opts.Settings,
		ra:       ra,
	}
}

func randomPassword() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

var settingNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

func checkSettings(s map[string]string) error {
	for k, v := range s {
		if !settingNameRE.MatchString(k) {
			return fmt.Errorf("testserver: invalid setting name %q", k)
		}
		if strings.EqualFold(k, "port") {
			return errors.New("testserver: the port is chosen by testserver; do not set it in Settings")
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("testserver: setting %s: value must not contain line breaks or NUL", k)
		}
	}
	return nil
}

// URL is the maintenance-database URL with superuser credentials.
func (c *Cluster) URL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return buildURL(c.port, c.password)
}

// Port is the TCP port the server listens on, on 127.0.0.1.
func (c *Cluster) Port() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.port
}

// DataDir is the cluster's data directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// LogFile is the server log, inside the data directory.
func (c *Cluster) LogFile() string { return c.logFile }

// Version is server_version_num, e.g. 150018.
func (c *Cluster) Version() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// Server describes the cluster as a Server.
func (c *Cluster) Server() *Server {
	return &Server{URL: c.URL(), Source: "local:" + c.binDir, Version: c.Version()}
}

// Stop shuts the server down (fast shutdown) and removes the cluster's
// directory, data directory included. Stopping a stopped cluster is a
// no-op.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	var errs []error
	if pm, ok := c.postmaster(); ok {
		if err := c.pgCtl(ctx, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
			errs = append(errs, err)
			if pm, ok := c.postmaster(); ok {
				killPostmaster(pm)
			}
		} else {
			waitDead([]int{pm}, 10*time.Second)
		}
	}
	if err := os.RemoveAll(c.baseDir); err != nil {
		errs = append(errs, err)
	} else {
		c.stopped = true
		errs = nil // the cluster is gone, which is all that matters
	}
	if c.watchdog != nil && c.watchdog.Process != nil {
		c.watchdog.Process.Kill()
	}
	if len(errs) > 0 {
		return fmt.Errorf("testserver: stopping the cluster in %s: %w", c.dataDir, errors.Join(errs...))
	}
	return nil
}

// Kill simulates a crash: it SIGKILLs the postmaster and all its children
// at once and waits until they are gone. The data directory stays; Restart
// brings the server back up through crash recovery. Unless the cluster is
// Durable, transactions committed shortly before Kill may be lost.
func (c *Cluster) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	pm, ok := c.postmaster()
	if !ok {
		return
	}
	killPostmaster(pm)
	// Leave no lock files behind: where orphans are not reaped (some
	// containers), the dead postmaster stays a zombie, which kill(pid, 0)
	// still finds, so postgres would take its postmaster.pid and socket lock
	// files for those of a running server and refuse to start.
	os.Remove(filepath.Join(c.dataDir, "postmaster.pid"))
	locks, _ := filepath.Glob(filepath.Join(c.dataDir, ".s.PGSQL.*"))
	for _, l := range locks {
		os.Remove(l)
	}
}

// Restart stops the server if it is running (fast shutdown) and starts it
// again on the same port, with the same data.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("testserver: Restart of a stopped cluster")
	}
	if pm, ok := c.postmaster(); ok {
		if err := c.pgCtl(ctx, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
			return fmt.Errorf("testserver: restart: %w", err)
		}
		waitDead([]int{pm}, 10*time.Second)
	}
	if err := c.pgStart(ctx); err != nil {
		return fmt.Errorf("testserver: restart: %w", err)
	}
	return nil
}

// postmaster returns the pid of the running postmaster, if any.
func (c *Cluster) postmaster() (int, bool) {
	pid := postmasterPID(c.dataDir)
	return pid, processAlive(pid)
}

func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// prepareBase makes the base directory traversable by the postgres user
// when running as root, and creates the data directory owned by it.
func (c *Cluster) prepareBase() error {
	if c.ra != nil {
		if err := os.Chmod(c.baseDir, 0o711); err != nil {
			return err
		}
		if err := c.ra.checkReachable(c.baseDir); err != nil {
			return err
		}
	}
	return c.makeDataDir()
}

func (c *Cluster) makeDataDir() error {
	if err := os.RemoveAll(c.dataDir); err != nil {
		return err
	}
	if err := os.Mkdir(c.dataDir, 0o700); err != nil {
		return err
	}
	return c.ra.chown(c.dataDir)
}

// command builds a command running a PostgreSQL binary as the right user,
// with libpq's PG* variables and locale variables removed from the
// environment (so that they do not change what pg_ctl or initdb do, and
// messages are in English).
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "LC_") || k == "LANG" || k == "LANGUAGE" ||
			(c.ra != nil && k == "HOME") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "LC_ALL=C")
	cmd.Dir = c.baseDir
	cmd.WaitDelay = 5 * time.Second
	c.ra.apply(cmd)
	return cmd
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	var out bytes.Buffer
	cmd := c.command(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		return fmt.Errorf("%s %s: %w:\n%s", name, strings.Join(args, " "), err, msg)
	}
	return nil
}

func (c *Cluster) pgCtl(ctx context.Context, args ...string) error {
	return c.run(ctx, "pg_ctl", append([]string{"-D", c.dataDir}, args...)...)
}

// initdb creates the cluster with the superuser password, trying the
// C.UTF-8 locale first and no locale if that fails.
func (c *Cluster) initdb(ctx context.Context) error {
	pwfile := filepath.Join(c.baseDir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	if err := c.ra.chown(pwfile); err != nil {
		return err
	}
	args := []string{
		"-D", c.dataDir, "-U", superuser,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=" + pwfile,
		"-E", "UTF8", "-N",
	}
	err := c.run(ctx, "initdb", append(args, "--locale=C.UTF-8")...)
	if err == nil || ctx.Err() != nil {
		return err
	}
	if err := c.makeDataDir(); err != nil {
		return err
	}
	if err2 := c.run(ctx, "initdb", append(args, "--no-locale")...); err2 != nil {
		return fmt.Errorf("%w\n(and again with --no-locale:) %w", err, err2)
	}
	return nil
}

// startNew configures and starts a freshly initialised cluster on a free
// port, trying other ports if another process grabs it first.
func (c *Cluster) startNew(ctx context.Context) error {
	conf := filepath.Join(c.dataDir, "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "\n# Added by testserver.\ninclude '%s'\n", confName)
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		if err := c.writeConf(port); err != nil {
			return err
		}
		c.port = port
		logStart := fileSize(c.logFile)
		err = c.pgStart(ctx)
		if err == nil {
			break
		}
		if attempt >= 5 || ctx.Err() != nil || !portInUse(c.logFile, logStart) {
			return err
		}
	}
	v, err := probe(ctx, buildURL(c.port, c.password))
	if err != nil {
		return fmt.Errorf("the server started but does not answer: %w", err)
	}
	c.version = v
	return nil
}

func (c *Cluster) writeConf(port int) error {
	set := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(port),
		"unix_socket_directories": "",
		"max_connections":         "200",
		"shared_buffers":          "128MB",
		"logging_collector":       "off",
	}
	// A Unix socket is handy for debugging (psql -h DATADIR), but only if
	// its path fits in sun_path (104 bytes on macOS).
	if len(c.dataDir)+len("/.s.PGSQL.65535.lock") < 100 {
		set["unix_socket_directories"] = c.dataDir
	}
	if !c.durable {
		set["fsync"] = "off"
		set["synchronous_commit"] = "off"
		set["full_page_writes"] = "off"
	}
	for k, v := range c.settings {
		set[k] = v
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by testserver; included from postgresql.conf.\n")
	for _, k := range keys {
		v := strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(set[k])
		fmt.Fprintf(&b, "%s = '%s'\n", k, v)
	}
	path := filepath.Join(c.dataDir, confName)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return c.ra.chown(path)
}

// pgStart starts the server and waits until it accepts connections. On
// failure the error includes the end of the server log.
func (c *Cluster) pgStart(ctx context.Context) error {
	err := c.pgCtl(ctx, "-l", c.logFile, "-w", "-t", "60", "start")
	if err == nil {
		return nil
	}
	// pg_ctl may have given up while the postmaster lives on.
	if pm, ok := c.postmaster(); ok {
		killPostmaster(pm)
	}
	return fmt.Errorf("%w\nlast lines of %s:\n%s", err, c.logFile, tail(c.logFile, 30))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// portInUse reports whether the log, from offset on, says that the port was
// taken.
func portInUse(logFile string, offset int64) bool {
	b, err := os.ReadFile(logFile)
	if err != nil || int64(len(b)) < offset {
		return false
	}
	s := string(b[offset:])
	return strings.Contains(s, "Address already in use") || strings.Contains(s, "could not bind")
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
