package email_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/email"
)

// silentStore is a store that never answers: each read waits for its
// context to end.
type silentStore struct{ email.Store }

func (silentStore) FindOrganizationByID(ctx context.Context, _ string) (*keygate.Organization, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// The email a change calls for is queued even if the client leaves, but a
// database that stops answering holds the request no longer than its
// deadline: the email is given up and logged.
func TestNotifyAuditEndsWithTheRequestsDeadline(t *testing.T) {
	srv, err := email.ParseServer("smtp://127.0.0.1:2525")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	o, err := email.New(silentStore{}, email.Options{Server: srv, From: "keygate@example.com", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		o.NotifyAudit(ctx, &keygate.AuditEntry{Action: keygate.AuditTokenCreated, OrganizationID: "org_x", TargetID: "tok_x"})
		done <- time.Since(start)
	}()
	select {
	case took := <-done:
		t.Logf("database silent, request deadline 300ms: NotifyAudit returned after %v", took.Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("NotifyAudit still waiting on a silent database 5s after the request's 300ms deadline")
	}
	if !strings.Contains(logs.String(), "could not queue the email") {
		t.Errorf("the lost email is not logged:\n%s", logs.String())
	}
}
