// Package retry is dbinit's one backoff loop. Waiting for the server,
// waiting for another runner's lock, waiting for sessions to leave a
// database and retrying the template swap all poll with it, so they share
// one notion of backoff, jitter, deadline and cancellation.
//
// The caller decides what is worth another attempt: an operation returns
// [Again](err) for a passing condition and any other error to stop at once.
// When the policy runs out, [Do] returns an [*ExhaustedError] holding the
// last passing condition, which the caller turns into its own error type
// (a wait timeout, a lock timeout).
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Policy says how often and how long to try.
type Policy struct {
	// Initial is the wait after the first failed attempt, 50ms. Each
	// later wait doubles, up to Max.
	Initial time.Duration
	// Max caps a single wait, 1s. Max == Initial polls at a fixed rate.
	Max time.Duration
	// Jitter adds up to this fraction of each wait at random, 0.25, so
	// that runners started together do not poll in step. 0 = none.
	Jitter float64
	// Timeout bounds the whole loop, measured from the call to Do; the
	// last wait is cut short so that a final attempt runs at the deadline.
	// 0 = no time limit.
	Timeout time.Duration
	// Attempts bounds the number of attempts; 0 = no limit. A policy
	// needs a Timeout, Attempts or a context that ends.
	Attempts int
}

// Attempt is what an operation learns about the try it is on.
type Attempt struct {
	N        int           // 1 for the first attempt
	Elapsed  time.Duration // since Do was called
	Deadline time.Time     // zero without a Timeout
}

// again marks an error as passing; after, when set, is the least wait
// before the next attempt.
type again struct {
	err   error
	after time.Duration
}

func (a *again) Error() string { return a.err.Error() }
func (a *again) Unwrap() error { return a.err }

// Again marks err as a condition that may pass by waiting: Do tries again.
// Again(nil) is nil.
func Again(err error) error {
	if err == nil {
		return nil
	}
	return &again{err: err}
}

// AgainAfter is Again, asking for at least d before the next attempt
// (a condition that polling fast would only make worse, such as a server
// with no connection slots left). The policy's deadline still applies.
func AgainAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &again{err: err, after: d}
}

// ExhaustedError says the policy ran out while the condition persisted.
type ExhaustedError struct {
	Attempts int
	Elapsed  time.Duration
	Last     error // the last condition an attempt reported with Again
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("gave up after %d attempts in %s: %v", e.Attempts, e.Elapsed.Round(time.Millisecond), e.Last)
}

func (e *ExhaustedError) Unwrap() error { return e.Last }

// Do runs op until it returns nil or an error not marked with Again, the
// policy runs out (an *ExhaustedError) or ctx ends (ctx's error). op gets a
// context that ends at the policy's deadline, so a single attempt cannot
// outlast it.
func Do(ctx context.Context, p Policy, op func(ctx context.Context, a Attempt) error) error {
	if p.Initial <= 0 {
		p.Initial = 50 * time.Millisecond
	}
	if p.Max < p.Initial {
		p.Max = max(p.Initial, time.Second)
	}
	start := time.Now()
	var deadline time.Time
	if p.Timeout > 0 {
		deadline = start.Add(p.Timeout)
	}
	wait := p.Initial
	for n := 1; ; n++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if !deadline.IsZero() {
			actx, cancel = context.WithDeadline(ctx, deadline)
		}
		err := op(actx, Attempt{N: n, Elapsed: time.Since(start), Deadline: deadline})
		cancel()
		var a *again
		if !errors.As(err, &a) {
			return err // nil, or final
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := time.Now()
		if (p.Attempts > 0 && n >= p.Attempts) || (!deadline.IsZero() && !now.Before(deadline)) {
			return &ExhaustedError{Attempts: n, Elapsed: now.Sub(start), Last: a.err}
		}
		sleep := max(wait, a.after)
		if p.Jitter > 0 {
			sleep += rand.N(time.Duration(float64(sleep)*p.Jitter) + 1)
		}
		if !deadline.IsZero() {
			sleep = min(sleep, time.Until(deadline))
		}
		if err := Sleep(ctx, sleep); err != nil {
			return err
		}
		wait = min(wait*2, p.Max)
	}
}

// Sleep waits for d or until ctx ends, whichever comes first, and returns
// ctx's error in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
