package backoff_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/backoff"
)

const ms = time.Millisecond

// waits returns the next n waits of b.
func waits(b *backoff.Backoff, n int) []time.Duration {
	var got []time.Duration
	for range n {
		got = append(got, b.Next())
	}
	return got
}

// lowest and highest are the random sources at either end of [0, n).
func lowest(int64) int64    { return 0 }
func highest(n int64) int64 { return n - 1 }

// The step doubles from Initial and stops at Max; each wait lies between
// half its step (the random source's lowest draw) and the whole step (its
// highest).
func TestWaitsDoubleUpToTheCapWithinEqualJitter(t *testing.T) {
	for _, tc := range []struct {
		name string
		rand func(int64) int64
		want []time.Duration
	}{
		{"lowest draw", lowest, []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 500 * ms, 500 * ms}},
		{"highest draw", highest, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1000 * ms, 1000 * ms}},
	} {
		b := &backoff.Backoff{Initial: 100 * ms, Max: time.Second, Rand: tc.rand}
		if got := waits(b, 6); !slices.Equal(got, tc.want) {
			t.Errorf("%s: waits %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The random source is asked for the jitter only: a number of the half
// step's nanoseconds, both ends included.
func TestRandomSourceDrawsTheHalfStep(t *testing.T) {
	var asked []int64
	b := &backoff.Backoff{Initial: 100 * ms, Max: 200 * ms, Rand: func(n int64) int64 {
		asked = append(asked, n)
		return 0
	}}
	waits(b, 3)
	want := []int64{int64(50*ms) + 1, int64(100*ms) + 1, int64(100*ms) + 1}
	if !slices.Equal(asked, want) {
		t.Errorf("random source asked for %v, want %v", asked, want)
	}
}

// After Reset (an attempt that worked) the steps start over at Initial.
func TestResetStartsOverAtInitial(t *testing.T) {
	b := &backoff.Backoff{Initial: 100 * ms, Max: time.Second, Rand: highest}
	waits(b, 5)
	b.Reset()
	if got, want := waits(b, 2), []time.Duration{100 * ms, 200 * ms}; !slices.Equal(got, want) {
		t.Errorf("waits after Reset %v, want %v", got, want)
	}
}

// Without a random source of its own, every wait still lies within its
// step's bounds.
func TestDefaultRandomSourceStaysWithinBounds(t *testing.T) {
	b := &backoff.Backoff{Initial: 3, Max: 1000}
	step := time.Duration(3)
	for i := range 1000 {
		if i%20 == 0 {
			b.Reset()
			step = 3
		}
		if w := b.Next(); w < step/2 || w > step {
			t.Fatalf("wait %d for step %d, want between %d and %d", w, step, step/2, step)
		}
		step = min(2*step, 1000)
	}
}

// A wait ends at once when its context has ended.
func TestWaitEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := &backoff.Backoff{Initial: time.Hour, Max: time.Hour}
	if b.Wait(ctx) {
		t.Error("Wait reported it waited out an hour on an ended context")
	}
	if !backoff.Sleep(context.Background(), 0) {
		t.Error("Sleep(0) on a live context reported the context ended")
	}
}
