package email_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/email"
	"github.com/keygate/keygate/email/smtptest"
	"github.com/keygate/keygate/internal/tcptest"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
)

// claimCountingStore is a real store that counts the claims made through
// it.
type claimCountingStore struct {
	email.Store
	claims atomic.Int64
}

func (s *claimCountingStore) ClaimEmails(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*keygate.Email, error) {
	s.claims.Add(1)
	return s.Store.ClaimEmails(ctx, now, lease, limit)
}

// runOutbox starts o.Run until the test ends.
func runOutbox(t *testing.T, o *email.Outbox) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after 10s for %s", what)
		}
	}
}

// workersOutbox is an outbox on store sending to smtpURL with four
// workers, the real clock and the given poll interval.
func workersOutbox(t *testing.T, store email.Store, smtpURL string, poll time.Duration) *email.Outbox {
	t.Helper()
	server, err := email.ParseServer(smtpURL)
	if err != nil {
		t.Fatal(err)
	}
	o, err := email.New(store, email.Options{Server: server, From: "keygate@example.com", Concurrency: testWorkers,
		PollInterval: poll, ScanInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

const testWorkers = 4

// An idle outbox claims once per poll interval, not once per worker.
func TestIdleOutboxClaimsOncePerPollInterval(t *testing.T) {
	f := newOutboxFixture(t)
	store := &claimCountingStore{Store: f.store}
	const poll = 50 * time.Millisecond
	o := workersOutbox(t, store, "smtp://127.0.0.1:9", poll)
	began := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.Run(ctx)
	}()
	time.Sleep(time.Second)
	cancel()
	<-done
	idle := time.Since(began)
	claims := store.claims.Load()
	// Each worker claims once as it starts; after that one claim per
	// interval. A loaded machine makes fewer, never more.
	most := int64(testWorkers) + int64(idle/poll) + 1
	t.Logf("idle for %v with %d workers polling every %v: %d claims (at most %d)", idle.Round(time.Millisecond), testWorkers, poll, claims, most)
	if claims > most {
		t.Errorf("%d claims in %v idle, want at most %d: one per poll interval, whatever the workers", claims, idle.Round(time.Millisecond), most)
	}
	if claims <= testWorkers {
		t.Errorf("%d claims in %v idle: no worker polled", claims, idle.Round(time.Millisecond))
	}
}

// Send wakes an idle worker: the email goes out at once, not at the next
// poll, an hour away.
func TestSendWakesAnIdleWorker(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	f := newOutboxFixture(t)
	store := &claimCountingStore{Store: f.store}
	o := workersOutbox(t, store, fmt.Sprintf("smtp://127.0.0.1:%d", srv.Port), time.Hour)
	runOutbox(t, o)
	waitFor(t, "the workers' first claims", func() bool { return store.claims.Load() >= testWorkers })
	if err := o.Send(f.ctx, email.Message{Kind: "test", To: []string{"ann@example.com"}, Subject: "Hello", Text: "Hello Ann"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the email (the next poll is an hour away)", func() bool { return len(srv.Messages()) == 1 })
}

// holdingSMTPServer accepts connections, signals each, and closes it
// without a greeting once released: an attempt that fails and is then
// recorded.
func holdingSMTPServer(t *testing.T) (addr string, accepted <-chan struct{}, release chan<- struct{}) {
	got, free := make(chan struct{}, 1), make(chan struct{})
	addr = tcptest.Serve(t, func(net.Conn) {
		got <- struct{}{}
		<-free
	})
	return addr, got, free
}

// A send to a server that greeted and then stopped answering ends when its context is cancelled (a shutdown's grace ended), not at
// the server's timeout a minute later.
func TestSendEndsWhenItsContextIsCancelled(t *testing.T) {
	hello := make(chan struct{}, 1)
	addr := tcptest.Serve(t, func(c net.Conn) {
		io.WriteString(c, "220 smtp.example.com ESMTP\r\n")
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			return
		}
		hello <- struct{}{}
		io.Copy(io.Discard, c) // and no answer to EHLO, ever
	})
	server, err := email.ParseServer("smtp://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	server.Timeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	sent := make(chan error, 1)
	go func() {
		sent <- server.Send(ctx, "keygate@example.com", []string{"ann@example.com"}, []byte("Subject: Hello\r\n\r\nHello\r\n"))
	}()
	select {
	case <-hello:
	case <-time.After(10 * time.Second):
		t.Fatal("the server got no EHLO")
	}
	cancel()
	select {
	case err := <-sent:
		t.Logf("context cancelled: Send returned %v", err)
		if err == nil {
			t.Error("a send to a silent server succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send still waiting on a silent server 10s after its context was cancelled (timeout 1m)")
	}
}

// An attempt still waiting on a PostgreSQL that stopped answering when the
// shutdown's grace ends is cancelled, instead of holding the shutdown for
// its lease (the SMTP timeout + 1 min); the email stays claimed and is
// sent again once the lease ends.
func TestShutdownEndsAttemptsWithTheGraceWhenTheDatabaseStopsAnswering(t *testing.T) {
	st, proxy := pgtest.OpenBehindProxy(t, postgres.Open)
	ctx := t.Context()
	addr, accepted, release := holdingSMTPServer(t)
	o := workersOutbox(t, st, "smtp://"+addr, time.Hour)
	runCtx, stopRun := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		o.Run(runCtx)
	}()
	if err := o.Send(ctx, email.Message{Kind: "test", To: []string{"ann@example.com"}, Subject: "Hello", Text: "Hello Ann"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the email was not sent")
	}
	proxy.Blackhole() // the attempt's record waits on a silent database
	close(release)

	const grace = 500 * time.Millisecond
	graceCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	began := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- o.Shutdown(graceCtx) }()
	select {
	case err := <-stopped:
		t.Logf("database blackholed, grace %v: Shutdown returned %v after %v", grace, err, time.Since(began).Round(time.Millisecond))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want the grace's deadline: an attempt was cut short", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Shutdown still waiting on a silent database 10s into a %v grace (the lease is 1m30s)", grace)
	}
	stopRun()
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running 10s after Shutdown and its context ended")
	}

	proxy.Forward()
	emails, err := st.ListEmails(ctx, keygate.EmailFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(emails) != 1 || emails[0].State != keygate.EmailPending || emails[0].Attempts != 1 {
		t.Fatalf("after the shutdown: %d emails, want 1 pending after its first, unrecorded, attempt", len(emails))
	}
	lease := 30*time.Second + time.Minute
	if again, err := st.ClaimEmails(ctx, time.Now().Add(lease), lease, 10); err != nil || len(again) != 1 {
		t.Errorf("once the lease ends the email is claimed again: %d, %v; want 1", len(again), err)
	}
}
