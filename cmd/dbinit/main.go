package main

import (
	_ "github.com/caarlos0/env/v11"
	_ "github.com/jackc/pgx/v5"
)

func main() {}
