package loadbench

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestBenchDrive(t *testing.T) {
	items := make([]int, 100)
	for i := range items {
		items[i] = i
	}
	busy := func(d time.Duration) {
		// The call's own work, not a wait for anything.
		for began := time.Now(); time.Since(began) < d; {
		}
	}
	t.Run("every item once", func(t *testing.T) {
		var seen [100]atomic.Int32
		tm, err := drive(t.Context(), 4, 0, items, func(_ context.Context, i int) error {
			seen[i].Add(1)
			return nil
		})
		if err != nil || tm.calls != len(items) || len(tm.latencies) != len(items) {
			t.Fatalf("drive = %+v, %v; want %d calls", tm, err, len(items))
		}
		for i := range seen {
			if n := seen[i].Load(); n != 1 {
				t.Fatalf("item %d called %d times", i, n)
			}
		}
	})
	t.Run("the first error stops every client", func(t *testing.T) {
		boom := errors.New("boom")
		var calls atomic.Int32
		_, err := drive(t.Context(), 4, 0, items, func(_ context.Context, i int) error {
			calls.Add(1)
			if i == 5 {
				return boom
			}
			busy(time.Millisecond)
			return nil
		})
		if !errors.Is(err, boom) || calls.Load() == int32(len(items)) {
			t.Fatalf("drive = %v after %d calls, want boom before the end", err, calls.Load())
		}
	})
	t.Run("the budget ends a slow run early", func(t *testing.T) {
		tm, err := drive(t.Context(), 2, 20*time.Millisecond, items, func(context.Context, int) error {
			busy(5 * time.Millisecond)
			return nil
		})
		if err != nil || tm.calls >= len(items) || len(tm.latencies) != tm.calls {
			t.Fatalf("drive = %d calls (%d latencies), %v; want fewer than %d", tm.calls, len(tm.latencies), err, len(items))
		}
		if note := tm.cut(len(items), 20*time.Millisecond); note == "" {
			t.Error("a run cut short has no note saying so")
		}
	})
}

func TestBenchThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -20000: "-20,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
