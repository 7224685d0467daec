// Package dbtest gives every Go test a brand-new PostgreSQL database, cloned
// in milliseconds from a template that holds the fully migrated schema.
//
//	func TestUsers(t *testing.T) {
//		t.Parallel()
//		pool := dbtest.New(t) // a fresh database with every migration in ./db applied
//		_, err := pool.Exec(context.Background(), `INSERT INTO users (name) VALUES ('ada')`)
//		...
//	}
//
// The template is built once per migration set (versions, names and bytes of
// the up files) and reused by every test, package and later run, until a file
// changes; then exactly one process rebuilds it, under an advisory lock, while
// the others wait. Each database is dropped when its test ends; a failed test
// keeps its database and logs how to connect to it (see [KeepOnFailure]); on
// a throwaway cluster it goes with the cluster when go test ends, so set
// TEST_DATABASE_URL to a server of your own to look at it afterwards.
//
// A file added after the last one builds the new template from a copy of
// the previous template, applying only the new file. From a template's
// second database on, a pool of ready clones ([PoolSize], default 4) is
// made in the background and refilled as tests take them: a test then gets its
// database by a rename instead of waiting for a copy.
//
// # Where the server comes from
//
//  1. TEST_DATABASE_URL, a superuser URL of the maintenance database, e.g.
//     postgres://postgres:secret@127.0.0.1:5432/postgres?sslmode=disable.
//  2. Otherwise a throwaway cluster started from the local PostgreSQL server
//     binaries (initdb, pg_ctl), one per `go test` run, shared by all its
//     packages and removed when go test exits. TEST_PG_BINDIR names the
//     binaries' folder when they are not found on PATH or under
//     /usr/lib/postgresql/*/bin.
//  3. Otherwise a [Provider] added with [RegisterProvider], for example
//     the testcontainers one in the module
//     github.com/savvi-studio/dbinit/dbtest/dbtestcontainers, which starts a
//     container from a local PostgreSQL image.
//
// When none is available the test fails, with what was tried. Under
// `go test -short` every test that asks dbtest for a database is skipped
// and no server is started.
//
// # Where the migrations come from
//
// DBINIT_DIR if set, else the db folder at the root of the module (the
// nearest parent folder with a go.mod), else [Dir] or [FS].
//
// # What it creates on the server
//
// Templates are named dbtpl_<16 hex digits of the set's hash>, test
// databases dbt_<time>_<test name>_<random>, clones waiting in the pool
// dbt_<time>_pool_<random>. Each process sweeps, once,
// test databases older than an hour that nobody is connected to, and
// templates of old migration sets beyond the newest three.
package dbtest
