package audit_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/audit"
)

// silentLog is an audit log whose store never answers: each call waits
// for its context to end.
type silentLog struct{ keygate.AuditLog }

func (silentLog) AppendAuditEntry(ctx context.Context, _ *keygate.AuditEntry) error {
	<-ctx.Done()
	return ctx.Err()
}

// An entry is stored even when the client leaves, but a database that
// stops answering holds the request no longer than its deadline: the
// entry is given up and logged.
func TestRecordEndsWithTheRequestsDeadline(t *testing.T) {
	var logs bytes.Buffer
	l := &audit.Log{Store: silentLog{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		l.Record(ctx, keygate.AuditLoginFailed, "", "", nil)
		done <- time.Since(start)
	}()
	select {
	case took := <-done:
		t.Logf("database silent, request deadline 300ms: Record returned after %v", took.Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("Record still waiting on a silent database 5s after the request's 300ms deadline")
	}
	if !strings.Contains(logs.String(), "audit: entry could not be stored") {
		t.Errorf("the lost entry is not logged:\n%s", logs.String())
	}
}
