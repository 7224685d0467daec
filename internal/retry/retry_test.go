package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errBusy = errors.New("busy")

func TestSucceedsAfterPassingErrors(t *testing.T) {
	t.Parallel()
	calls := 0
	err := Do(context.Background(), Policy{Initial: time.Millisecond, Timeout: 5 * time.Second}, func(ctx context.Context, a Attempt) error {
		calls++
		if a.N != calls {
			t.Errorf("attempt %d reported as %d", calls, a.N)
		}
		if calls < 3 {
			return Again(errBusy)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err = %v after %d calls", err, calls)
	}
}

func TestFinalErrorStopsAtOnce(t *testing.T) {
	t.Parallel()
	final := errors.New("password authentication failed")
	calls := 0
	err := Do(context.Background(), Policy{Initial: time.Millisecond, Timeout: 5 * time.Second}, func(context.Context, Attempt) error {
		calls++
		return final
	})
	if !errors.Is(err, final) || calls != 1 {
		t.Fatalf("err = %v after %d calls", err, calls)
	}
}

func TestTimeoutKeepsTheLastCondition(t *testing.T) {
	t.Parallel()
	start := time.Now()
	err := Do(context.Background(), Policy{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond, Timeout: 150 * time.Millisecond}, func(context.Context, Attempt) error {
		return Again(errBusy)
	})
	var ex *ExhaustedError
	if !errors.As(err, &ex) || !errors.Is(err, errBusy) || ex.Attempts < 3 {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > time.Second {
		t.Fatalf("gave up after %s, want about 150ms", d)
	}
}

func TestAttemptContextEndsAtTheDeadline(t *testing.T) {
	t.Parallel()
	err := Do(context.Background(), Policy{Timeout: 100 * time.Millisecond}, func(ctx context.Context, a Attempt) error {
		if a.Deadline.IsZero() {
			t.Error("no deadline reported")
		}
		<-ctx.Done() // an attempt that would hang is cut at the deadline
		return Again(ctx.Err())
	})
	var ex *ExhaustedError
	if !errors.As(err, &ex) || ex.Attempts != 1 {
		t.Fatalf("err = %v", err)
	}
}

func TestAttemptsLimit(t *testing.T) {
	t.Parallel()
	calls := 0
	err := Do(context.Background(), Policy{Initial: time.Millisecond, Attempts: 5}, func(context.Context, Attempt) error {
		calls++
		return Again(errBusy)
	})
	var ex *ExhaustedError
	if !errors.As(err, &ex) || calls != 5 || ex.Attempts != 5 {
		t.Fatalf("err = %v after %d calls", err, calls)
	}
}

func TestCancelDuringWait(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := Do(ctx, Policy{Initial: time.Hour}, func(context.Context, Attempt) error { return Again(errBusy) })
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %s", err, time.Since(start))
	}
}

func TestBackoffDoublesToMax(t *testing.T) {
	t.Parallel()
	var at []time.Duration
	_ = Do(context.Background(), Policy{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond, Attempts: 6}, func(_ context.Context, a Attempt) error {
		at = append(at, a.Elapsed)
		return Again(errBusy)
	})
	// Waits 10, 20, 40, 40, 40: attempt 6 starts no earlier than 150ms.
	if len(at) != 6 || at[5] < 150*time.Millisecond {
		t.Fatalf("attempts at %v", at)
	}
	if gap := at[5] - at[4]; gap < 40*time.Millisecond {
		t.Fatalf("last wait %s, want the 40ms cap", gap)
	}
}

func TestAgainNil(t *testing.T) {
	if Again(nil) != nil {
		t.Fatal("Again(nil) must be nil")
	}
}

// TestAgainAfterWaitsAtLeast: an operation can ask for a longer wait than
// the policy's next one; the deadline still wins.
func TestAgainAfterWaitsAtLeast(t *testing.T) {
	t.Parallel()
	var at []time.Duration
	_ = Do(context.Background(), Policy{Initial: 5 * time.Millisecond, Max: 5 * time.Millisecond, Attempts: 3}, func(_ context.Context, a Attempt) error {
		at = append(at, a.Elapsed)
		return AgainAfter(errBusy, 60*time.Millisecond)
	})
	if len(at) != 3 || at[1]-at[0] < 60*time.Millisecond || at[2]-at[1] < 60*time.Millisecond {
		t.Fatalf("attempts at %v, want at least 60ms apart", at)
	}
	start := time.Now()
	err := Do(context.Background(), Policy{Initial: time.Millisecond, Timeout: 50 * time.Millisecond}, func(context.Context, Attempt) error {
		return AgainAfter(errBusy, time.Hour)
	})
	var ex *ExhaustedError
	if !errors.As(err, &ex) || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %s, want exhausted at the 50ms deadline", err, time.Since(start))
	}
	if AgainAfter(nil, time.Second) != nil {
		t.Fatal("AgainAfter(nil) must be nil")
	}
}
