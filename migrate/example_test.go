package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/migrate"
)

// Load checks every file of a folder before anything touches a database
// and reports every problem at once, each with its place.
func ExampleLoad() {
	folder := fstest.MapFS{
		"001_users.sql":      {Data: []byte("CREATE TABLE users (id bigint PRIMARY KEY);\nCOMMENT ON TABLE users IS 'people';\n")},
		"001_users_down.sql": {Data: []byte("DROP TABLE users;\n")},
		"002_index.sql":      {Data: []byte("-- dbinit:no-transaction\nCREATE INDEX CONCURRENTLY users_id ON users (id);\n")},
		"README.md":          {Data: []byte("not a migration")},
	}
	set, err := migrate.Load(folder, "db")
	if err != nil {
		panic(err)
	}
	for _, m := range set.Migrations {
		fmt.Printf("%d %s: %d statements, down file: %v, no-transaction: %v\n",
			m.Version, m.Name, len(m.Up.Statements), m.Down != nil, m.Up.NoTransaction)
	}

	_, err = migrate.Load(fstest.MapFS{"001_a.sql": {Data: []byte("BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\n")}}, "db")
	var le *migrate.LoadError
	if errors.As(err, &le) {
		for _, p := range le.Problems {
			fmt.Println(p.Path, p.Line, p.Col)
		}
	}
	// Output:
	// 1 users: 2 statements, down file: true, no-transaction: false
	// 2 index: 1 statements, down file: false, no-transaction: true
	// db/001_a.sql 1 1
	// db/001_a.sql 3 1
}

// PlanUp compares a folder with a database's history without a server:
// what is pending, and whether anything drifted.
func ExamplePlanUp() {
	set, err := migrate.Load(fstest.MapFS{
		"001_users.sql": {Data: []byte("CREATE TABLE users (id bigint PRIMARY KEY);")},
		"002_posts.sql": {Data: []byte("CREATE TABLE posts (id bigint PRIMARY KEY);")},
	}, "db")
	if err != nil {
		panic(err)
	}
	// The history of a database that has 001 applied, as ReadHistory
	// returns it.
	applied := []migrate.Applied{{Version: 1, Name: "users", Checksum: set.Find(1).Up.Checksum, State: migrate.StateApplied}}
	plan, err := migrate.PlanUp(set, applied, migrate.UpOptions{})
	if err != nil {
		panic(err)
	}
	for _, st := range plan.Steps {
		fmt.Println("pending:", st.Script.Path)
	}

	applied[0].Checksum = "edited since"
	_, err = migrate.PlanUp(set, applied, migrate.UpOptions{})
	var drift *migrate.DriftError
	fmt.Println(errors.As(err, &drift), len(drift.Changed))
	// Output:
	// pending: db/002_posts.sql
	// true 1
}

// Scaffold names the next migration after the folder's highest version,
// keeping the folder's zero-padding.
func ExampleScaffold() {
	up, down, err := migrate.Scaffold(fstest.MapFS{"007_users.sql": {}, "007_users_down.sql": {}}, "Add posts!")
	if err != nil {
		panic(err)
	}
	fmt.Println(up.Name, down.Name)
	// Output: 008_add_posts.sql 008_add_posts_down.sql
}

// Up applies what is pending to the database conn is connected to. This
// example is compile-only: it needs a server (DATABASE_URL).
func ExampleMigrator_Up() {
	ctx := context.Background()
	set, err := migrate.LoadDir("db")
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // every problem of the folder, FILE:LINE:COL each
		os.Exit(2)
	}
	conn, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer conn.Close(ctx)
	m, err := migrate.New(set, migrate.Options{Logger: slog.Default()})
	if err != nil {
		panic(err)
	}
	res, err := m.Up(ctx, conn, migrate.UpOptions{})
	var sqlErr *migrate.SQLError
	if errors.As(err, &sqlErr) {
		fmt.Fprintln(os.Stderr, sqlErr) // FILE:LINE:COL, SQLSTATE, message, the line with a caret
		os.Exit(1)
	}
	if err != nil {
		panic(err)
	}
	fmt.Printf("applied %d files in %s\n", len(res.FilesExecuted), res.Duration)
}
