// Package testserver decides where the PostgreSQL server used by tests comes
// from. Every database test in this module, and the public dbtest package,
// runs against a real PostgreSQL server obtained through [Get] or [MustGet];
// nothing is mocked.
//
// # Resolution order
//
// [Get] resolves once per process and then keeps returning the same result:
//
//  1. TEST_DATABASE_URL, if set, is used as is. It must be a URL of the
//     maintenance database with superuser credentials, for example
//     postgres://postgres:secret@127.0.0.1:5432/postgres?sslmode=disable.
//     Get verifies that it answers. If it is set but does not answer, Get
//     fails; it never falls back to something else.
//  2. Otherwise a throwaway cluster is started from local PostgreSQL server
//     binaries (pg_ctl, initdb and postgres). The binary directory is, in
//     this order: TEST_PG_BINDIR; `pg_config --bindir` or the directory of
//     initdb, if either is on PATH; the highest-versioned of
//     /usr/lib/postgresql/*/bin (Debian, Ubuntu), /usr/pgsql-*/bin (RHEL),
//     /opt/homebrew/opt/postgresql@*/bin, /usr/local/opt/postgresql@*/bin
//     (Homebrew) and /usr/local/pgsql/bin (source builds).
//  3. Otherwise the [Provider]s added with [Register], in order (for
//     example a testcontainers provider, which lives in its own package so
//     that users who do not need it do not import it).
//  4. Otherwise Get returns an error wrapping [ErrNoServer] that lists
//     everything that was tried. [MustGet] turns that into a test failure.
//     Under `go test -short`, MustGet skips the test before looking for a
//     server, so short runs start no PostgreSQL.
//
// # One cluster per go test run
//
// `go test ./...` runs one test binary per package, several at a time, all
// children of the same go command. They share a single cluster. Its
// directory is <dir>/dbinit-testserver-<euid>-<pid of the go command>, where
// <dir> is TEST_PG_TMPDIR or else [os.TempDir]; an flock on the file "lock"
// in it serialises the binaries. The first binary to take the lock runs
// initdb, starts the server and writes "state.json" (port, password,
// binary directory, server version); the others read it. Separate `go test`
// runs have separate go commands and therefore separate clusters on
// separate ports.
//
// When the go command exits, for whatever reason, the cluster goes with it:
// the binary that created the cluster also started a small detached
// watchdog (a /bin/sh loop in its own session) that polls the go command's
// pid once a second and, once it is gone, shuts the postmaster down
// (SIGQUIT, i.e. immediate shutdown; SIGKILL if it does not comply) and
// removes the directory. Directories whose owner process is dead but that
// are still there (the watchdog itself was killed, the machine rebooted)
// are removed by the next run.
//
// When a test binary is not run by the go command (for example ./pkg.test
// run by hand, or under a debugger), its cluster is private to that process
// and removed when it exits. TEST_PG_OWNER_PID overrides the pid whose
// lifetime bounds the shared cluster.
//
// # Private clusters
//
// [StartLocal] starts a brand-new cluster for a single caller, for tests
// that stop, restart or kill the server, or that need other settings (for
// example benchmarks that need default durability). The caller stops it
// with [Cluster.Stop]; if it does not, a watchdog removes it when the test
// binary exits.
//
// # Server settings
//
// Clusters listen on 127.0.0.1 only, on a free port; host connections use
// scram-sha-256 password authentication with a random password generated
// per cluster (so tests can exercise authentication failures), and the
// superuser is "postgres". Unless LocalOptions.Durable is set, fsync,
// synchronous_commit and full_page_writes are off: the server is fast but
// loses recently committed transactions on a crash, including a
// [Cluster.Kill]. Crash tests must therefore use Durable. The server log is
// postgresql.log in the data directory.
//
// # Running as root
//
// initdb and postgres refuse to run as root. When the tests run as root,
// this package runs initdb, pg_ctl and postgres as the "postgres" system
// user, which must exist, and the temporary directory must be reachable by
// that user (the default /tmp is).
//
// # Environment variables
//
//   - TEST_DATABASE_URL: use this server instead of starting one.
//   - TEST_PG_BINDIR: directory holding pg_ctl, initdb and postgres.
//   - TEST_PG_OWNER_PID: pid whose exit stops the shared cluster (default:
//     the go command that ran the test binary).
//   - TEST_PG_TMPDIR: where cluster directories are created (default:
//     [os.TempDir], i.e. TMPDIR or /tmp). A cluster takes about 60 MB. On
//     machines with slow disks or overlay file systems, a tmpfs such as
//     /dev/shm makes initdb several times faster, if it is large enough
//     (Docker's default /dev/shm is only 64 MB).
package testserver
