package docker

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestComposeStartTimes measures, from `compose up` on an empty volume
// until the app starts, where the time goes: PostgreSQL's first start
// (initdb, the temporary server, the restart), dbinit's wait for it,
// dbinit's own work on the example schema, and the app's start. Twice:
// with the compose file as shipped (dbinit started with the server,
// service_started, which works because dbinit waits for the server itself
// and rides out the first-start restart) and with dbinit waiting for the
// postgres healthcheck (service_healthy). The figures are logged
// (docs/benchmarks.md reports them); the test checks that both ways bring
// the app up, not how fast.
func TestComposeStartTimes(t *testing.T) {
	requireDocker(t)
	for _, variant := range []string{"service_started", "service_healthy"} {
		t.Run(variant, func(t *testing.T) {
			s := newStack(t, "dbinit/postgres-base:17")
			if variant == "service_healthy" {
				extra := filepath.Join(t.TempDir(), "healthy.yml")
				writeFile(t, extra, "version: \"3.8\"\nservices:\n  dbinit:\n    depends_on:\n      postgres: {condition: service_healthy}\n")
				chmodAll(t, filepath.Dir(extra))
				s.files = append(s.files, "-f", extra)
			}
			t0 := time.Now()
			if out, err := s.up(); err != nil {
				t.Fatalf("compose up: %v\n%s", err, out)
			}
			if code := s.exitCode("dbinit"); code != 0 {
				t.Fatalf("dbinit exited %d:\n%s", code, s.logs("dbinit"))
			}
			var appReady time.Time
			waitFor(t, func() bool {
				appReady = s.logLine("app", "app ready: 3 migrations applied")
				return !appReady.IsZero()
			}, "the app to start")

			pg, dbi := s.inspect("postgres"), s.inspect("dbinit")
			// The server that stays: the last "ready to accept connections"
			// (the first is the temporary one of the first start).
			pgReady := s.lastLogLine("postgres", "ready to accept connections")
			if pgReady.IsZero() {
				t.Fatalf("postgres never said it was ready:\n%s", s.logs("postgres"))
			}
			logs := s.logs("dbinit")
			waited := time.Duration(0)
			if m := regexp.MustCompile(`msg="server is ready".*waited_ms=(\d+)`).FindStringSubmatch(logs); m != nil {
				ms, _ := strconv.Atoi(m[1])
				waited = time.Duration(ms) * time.Millisecond
			}
			if variant == "service_healthy" && dbi.started.Before(pgReady) {
				t.Errorf("dbinit started at %s, before the server it waited for was ready (%s)", dbi.started, pgReady)
			}
			r := func(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
			t.Logf("%s: up -> app ready %s | up -> postgres started %s | postgres start -> ready %s | ready -> dbinit start %s | dbinit waiting %s | dbinit after ready %s | dbinit run %s (work %s) | dbinit exit -> app ready %s",
				variant, r(appReady.Sub(t0)), r(pg.started.Sub(t0)), r(pgReady.Sub(pg.started)), r(dbi.started.Sub(pgReady)), r(waited),
				r(dbi.finished.Sub(later(pgReady, dbi.started))), r(dbi.finished.Sub(dbi.started)), r(dbi.finished.Sub(dbi.started)-waited),
				r(appReady.Sub(dbi.finished)))
		})
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// containerTimes is when a service's container started and finished.
type containerTimes struct{ started, finished time.Time }

func (s *stack) inspect(service string) containerTimes {
	s.t.Helper()
	id, err := s.compose("ps", "-q", service)
	if err != nil || strings.TrimSpace(id) == "" {
		s.t.Fatalf("no container for %s: %v", service, err)
	}
	out, err := exec.Command("docker", "inspect", "-f", "{{json .State}}", strings.TrimSpace(id)).Output()
	if err != nil {
		s.t.Fatal(err)
	}
	var st struct{ StartedAt, FinishedAt time.Time }
	if err := json.Unmarshal(out, &st); err != nil {
		s.t.Fatal(err)
	}
	return containerTimes{st.StartedAt, st.FinishedAt}
}

// logLine returns the time of the first log line of service containing
// text, from Docker's timestamps; zero when there is none.
func (s *stack) logLine(service, text string) time.Time {
	ts := s.logTimes(service, text)
	if len(ts) == 0 {
		return time.Time{}
	}
	return ts[0]
}

func (s *stack) lastLogLine(service, text string) time.Time {
	ts := s.logTimes(service, text)
	if len(ts) == 0 {
		return time.Time{}
	}
	return ts[len(ts)-1]
}

func (s *stack) logTimes(service, text string) []time.Time {
	id, err := s.compose("ps", "-q", service)
	if err != nil || strings.TrimSpace(id) == "" {
		return nil
	}
	out, _ := exec.Command("docker", "logs", "-t", strings.TrimSpace(id)).CombinedOutput()
	var ts []time.Time
	for _, line := range strings.Split(string(out), "\n") {
		stamp, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.Contains(rest, text) {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, stamp); err == nil {
			ts = append(ts, t)
		}
	}
	return ts
}
