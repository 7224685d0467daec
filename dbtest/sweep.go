package dbtest

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/provision"
)

// What the sweep keeps: databases of tests younger than maxAge (a run still
// going, or a failure kept for inspection) and the newest templates.
const (
	maxAge        = time.Hour
	keepTemplates = 3
)

var (
	templateRE = regexp.MustCompile(`^dbtpl_[0-9a-f]{16}$`)
	builtRE    = regexp.MustCompile(`built=(\S+)`)
)

// sweep removes what killed runs left: test databases older than maxAge,
// build leftovers, and templates of old migration sets beyond the newest few.
// It runs once per process, under the build lock.
func sweep(ctx context.Context, p *provision.Provisioner, current string) error {
	unlock, err := p.Lock.Lock(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = unlock(context.WithoutCancel(ctx)) }()
	rows, err := p.Maint.Query(ctx, `
SELECT datname, coalesce(shobj_description(oid, 'pg_database'), '')
FROM pg_database WHERE starts_with(datname, $1) OR starts_with(datname, $2)`, dbPrefix, templatePrefix)
	if err != nil {
		return err
	}
	type db struct{ name, comment string }
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (db, error) {
		var d db
		err := r.Scan(&d.name, &d.comment)
		return d, err
	})
	if err != nil {
		return err
	}
	var old []db
	for _, d := range all {
		switch {
		case d.name == current:
		case templateRE.MatchString(d.name):
			old = append(old, d)
		case strings.HasPrefix(d.name, templatePrefix):
			// A build or swap leftover of another migration set; nobody is
			// building while we hold the lock.
			if err := p.Drop(ctx, d.name); err != nil {
				return err
			}
		default:
			m := dbNameRE.FindStringSubmatch(d.name)
			if m == nil {
				continue
			}
			sec, err := strconv.ParseInt(m[1], 36, 64)
			if err != nil || time.Since(time.Unix(sec, 0)) < maxAge {
				continue
			}
			// A long test still using it, or someone inspecting a kept one.
			var sessions int
			if err := p.Maint.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, d.name).Scan(&sessions); err != nil || sessions > 0 {
				continue
			}
			if err := p.Drop(ctx, d.name); err != nil {
				return err
			}
		}
	}
	// Newest first by build time; the current template counts as one kept.
	built := func(d db) string {
		if m := builtRE.FindStringSubmatch(d.comment); m != nil {
			return m[1]
		}
		return ""
	}
	slices.SortFunc(old, func(a, b db) int { return strings.Compare(built(b), built(a)) })
	for i, d := range old {
		if i < keepTemplates-1 {
			continue
		}
		if err := p.DropTemplate(ctx, d.name); err != nil {
			return err
		}
	}
	return nil
}
