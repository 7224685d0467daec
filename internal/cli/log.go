package cli

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/savvi-studio/dbinit/internal/config"
)

// newLogger writes text or JSON lines to w, with every secret masked: a
// password must never reach a log, whoever formats the message (pgx's own
// errors quote connection strings).
func newLogger(w io.Writer, cfg *config.Config, secrets []string) *slog.Logger {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	rw := &redactWriter{w: w, secrets: secrets}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(rw, opts))
	}
	return slog.New(slog.NewTextHandler(rw, opts))
}

func secretsOf(cfg *config.Config) []string { return longSecrets(cfg.Secrets()) }

// longSecrets drops the strings too short to mask.
func longSecrets(all []string) []string {
	var out []string
	for _, s := range all {
		// Very short "secrets" would mask ordinary words; they are not worth
		// the noise (and a 1-3 character password is not a secret anyway).
		if len(s) >= 4 {
			out = append(out, s)
		}
	}
	return out
}

// redactWriter masks secrets in whatever passes through it. slog writes one
// whole line per call, so a secret is never split across two writes.
type redactWriter struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string
}

func (r *redactWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := p
	for _, s := range r.secrets {
		if bytes.Contains(out, []byte(s)) {
			out = []byte(strings.ReplaceAll(string(out), s, "xxxxx"))
		}
	}
	if _, err := r.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// lineWriter passes whole lines on, so that a child process's output,
// written in arbitrary chunks, reaches a redactWriter a line at a time and
// no secret is split between two writes. Flush writes the rest.
type lineWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if i := bytes.LastIndexByte(l.buf, '\n'); i >= 0 {
		if _, err := l.w.Write(l.buf[:i+1]); err != nil {
			return 0, err
		}
		l.buf = append(l.buf[:0], l.buf[i+1:]...)
	}
	return len(p), nil
}

func (l *lineWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.w.Write(append(l.buf, '\n'))
		l.buf = nil
	}
}
