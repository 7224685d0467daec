// Package bench holds dbinit's benchmarks: applying a 300-file migration
// corpus with the engine and with psql, `dbinit init` (build and no-op),
// cloning the template, and dbtest.New against raw CREATE DATABASE and
// migrating from scratch. They start throwaway PostgreSQL clusters from the
// local server binaries and run only with -bench:
//
//	make bench
//
// docs/benchmarks.md has the figures and how to read them.
package bench
