package provision

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// markerPrefix starts the comment of every template dbinit made.
const markerPrefix = "dbinit template"

// Marker is what the comment of a complete template says: which migration
// set it was built from, and when and by what. Written by the swap, in the
// same transaction that marks the database IS_TEMPLATE.
type Marker struct {
	Set     string    // the migration set's hash, migrate.Set.Hash
	Files   int       // number of up files
	Latest  int64     // highest version
	Built   time.Time // UTC, second precision
	Version string    // dbinit version that built it, "v1.2.0"
}

// Comment renders the marker as the database comment, e.g.
// "dbinit template; set=3f...; files=7; latest=7; built=2026-11-29T05:09:45Z by dbinit v1.2.0".
func (m Marker) Comment() string {
	return fmt.Sprintf("%s; set=%s; files=%d; latest=%d; built=%s by dbinit %s",
		markerPrefix, m.Set, m.Files, m.Latest, m.Built.UTC().Format(time.RFC3339), m.Version)
}

var markerRE = regexp.MustCompile(`^dbinit template; set=([0-9a-f]+); files=([0-9]+); latest=([0-9]+); built=(\S+) by dbinit (.*)$`)

// ParseMarker reads a template's comment. ok is false when the comment is
// not a marker dbinit wrote.
func ParseMarker(comment string) (m Marker, ok bool) {
	g := markerRE.FindStringSubmatch(comment)
	if g == nil {
		return m, false
	}
	files, err1 := strconv.Atoi(g[2])
	latest, err2 := strconv.ParseInt(g[3], 10, 64)
	built, err3 := time.Parse(time.RFC3339, g[4])
	if err1 != nil || err2 != nil || err3 != nil {
		return m, false
	}
	return Marker{Set: g[1], Files: files, Latest: latest, Built: built, Version: g[5]}, true
}
