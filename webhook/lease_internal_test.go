package webhook

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

// silentStore never answers: each call waits for its context to end.
type silentStore struct{ Store }

func (*silentStore) FindWebhook(ctx context.Context, _ string) (*keygate.Webhook, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// An attempt is not cut short by a context that never ends (the one
// Run's workers give it outlives their claiming), but a database that
// stopped answering holds it, and so a shutdown, no longer than the
// claim's lease.
func TestAttemptEndsWithItsLeaseWhenTheStoreStopsAnswering(t *testing.T) {
	d := New(&silentStore{}, Options{Concurrency: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	d.lease = 300 * time.Millisecond
	done := make(chan struct{})
	go func() {
		d.attempt(context.Background(), &keygate.WebhookDelivery{ID: "whd_1", WebhookID: "wh_1", Attempts: 1})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("an attempt still waiting on a silent store after 5s (lease 300ms)")
	}
}
