package detach_test

import (
	"context"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/detach"
)

type key struct{}

func TestContextOutlivesCancelButNotTheDeadline(t *testing.T) {
	parent, cancel := context.WithTimeout(context.WithValue(context.Background(), key{}, "v"), 200*time.Millisecond)
	ctx, stop := detach.Context(parent)
	defer stop()
	cancel()
	if ctx.Err() != nil {
		t.Fatalf("cancelled with its parent: %v", ctx.Err())
	}
	if ctx.Value(key{}) != "v" {
		t.Error("the parent's values are lost")
	}
	pd, _ := parent.Deadline()
	if d, ok := ctx.Deadline(); !ok || !d.Equal(pd) {
		t.Errorf("deadline %v %v, want the parent's %v", d, ok, pd)
	}
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("still running a second past the parent's deadline")
	}

	ctx, stop = detach.Context(context.Background())
	defer stop()
	if _, ok := ctx.Deadline(); ok || ctx.Done() != nil {
		t.Error("a parent without a deadline gave one")
	}
}
