module github.com/savvi-studio/dbinit/docker

go 1.26.8

require (
	github.com/jackc/pgx/v5 v5.12.0
	github.com/savvi-studio/dbinit v0.0.0-00010101000000-000000000000
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/kr/pretty v0.3.1 // indirect
	github.com/rogpeppe/go-internal v1.14.1 // indirect
	golang.org/x/text v0.43.0 // indirect
)

// Developed in the same repository; go.work at the root joins the two.
// This module holds the container tests, so that their dependencies stay
// out of the main module's go.mod.
replace github.com/savvi-studio/dbinit => ..
