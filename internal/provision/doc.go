// Package provision owns every database-level operation dbinit performs on
// a server: whether a database exists, creating, cloning and dropping
// databases, building the template and swapping it in, the working
// database's lifecycle (clone when absent, migrate when present, reset on
// request), the marker that says a template is complete, and the sweep of
// databases that dbtest's killed runs left behind.
//
// Everything goes through a [Server]: a maintenance connection (the
// database of DATABASE_URL, "postgres" by default) on which dbinit takes its
// lock and runs CREATE DATABASE, DROP DATABASE and ALTER DATABASE.
//
// # Files
//
//   - server.go: Server, Exists, Create, Clone, Drop.
//   - template.go: EnsureTemplate, the build in a side database and the swap.
//   - marker.go: how a complete template is marked and recognised.
//   - working.go: Init (template, then the working database), CloneTemplate,
//     CreateIfMissing.
//   - sweep.go: names of test databases and the sweep of old ones.
//   - errors.go: the errors callers branch on.
//
// # Crash safety
//
// A template is complete only when it is marked IS_TEMPLATE and its comment
// carries the marker with the hash of the migration set it was built from.
// Builds happen in a database of their own and are swapped in with one
// transaction that renames and marks them, so a crash at any point leaves
// the previous complete template or none under the name, never a half-built
// one. Build databases of runners that died are dropped by the next run.
package provision
