// Package migrate is dbinit's migration engine: it loads a folder of numbered
// SQL files, compares them with the history recorded in a database, plans what
// to run and applies it with tracking, checksums and locking.
//
// # Files
//
// A migration folder holds up files named <digits>_<name>.sql and, optionally,
// their reverses <digits>_<name>_down.sql. The version is the number's value,
// so 007_a.sql and 7_b.sql collide. Files are applied in numeric order. Every
// file is read, checked and split into statements by [Load] before anything
// touches a database, so a bad folder never leaves a database half-migrated.
//
// # Transactions
//
// By default each file runs in its own transaction together with the history
// row that records it: the whole file is sent to the server at once, so the
// server's error position maps straight to the file. A file whose leading
// comment block contains the line
//
//	-- dbinit:no-transaction
//
// runs statement by statement outside a transaction instead (needed for
// CREATE INDEX CONCURRENTLY and the like). Its progress is recorded after each
// statement; a failure leaves the file recorded as partial, and the next run
// resumes at the failed statement if the statements before it are unchanged.
//
// # History
//
// The history lives in dbinit.schema_migrations in every managed database.
// Checksums are SHA-256 of the file's bytes; an applied file whose checksum
// changed is drift and stops every run until it is restored or accepted.
//
// # Durability
//
// Within one run, every transactional file except the last commits with
// synchronous_commit = off and the run ends with one durable commit. PostgreSQL
// writes WAL in order and a durable commit flushes everything before it, so when
// a run reports success all of its files are on disk; a crash before that loses
// a suffix of whole files (each with its history row), never part of one, and
// the next run applies them again. See docs/benchmarks.md for the effect.
package migrate
