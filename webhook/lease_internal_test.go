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

// An attempt in flight when the dispatcher's context ends still finishes,
// but a database that stopped answering holds it (and so a shutdown) no
// longer than the claim's lease.
func TestAttemptEndsWithItsLeaseWhenTheStoreStopsAnswering(t *testing.T) {
	d := New(&silentStore{}, Options{Concurrency: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	d.lease = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		d.attempt(ctx, &keygate.WebhookDelivery{ID: "whd_1", WebhookID: "wh_1", Attempts: 1})
		close(done)
	}()
	time.Sleep(50 * time.Millisecond) // the attempt is waiting on the store
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("an attempt still waiting on a silent store 5s after its context ended (lease 300ms)")
	}
}
