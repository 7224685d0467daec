// Package archtest holds no code, only tests of the repository's shape:
// which package may import which (docs/architecture.md draws it), that the
// command line holds no SQL, and that a user's module that imports migrate
// and dbtest gets none of the container tooling's dependencies.
package archtest
