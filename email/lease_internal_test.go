package email

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

func (silentStore) ListInvitations(ctx context.Context, _ keygate.InvitationFilter) ([]*keygate.Invitation, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (silentStore) RecordEmailAttempt(ctx context.Context, _ *keygate.EmailAttempt) error {
	<-ctx.Done()
	return ctx.Err()
}

// An attempt is not cut short by a context that never ends (the one
// Run's workers give it outlives their claiming), but a database that
// stopped answering holds it, and so a shutdown, no longer than the
// claim's lease.
func TestAttemptEndsWithItsLeaseWhenTheStoreStopsAnswering(t *testing.T) {
	srv, err := ParseServer("smtp://127.0.0.1:2525")
	if err != nil {
		t.Fatal(err)
	}
	o, err := New(silentStore{}, Options{Server: srv, From: "keygate@example.com", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	o.lease = 300 * time.Millisecond
	done := make(chan struct{})
	go func() {
		o.attempt(context.Background(), &keygate.Email{ID: "em_1", OrganizationID: "org_1", InvitationID: "inv_1", Attempts: 1})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("an attempt still waiting on a silent store after 5s (lease 300ms)")
	}
}
