package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/sqlite"
)

// These tests run parts of themselves in child processes, as a server and
// the CLI share one file in production. A child is this test binary started
// with KEYGATE_SQLITE_CHILD naming what to do.

func TestMain(m *testing.M) {
	if job := os.Getenv("KEYGATE_SQLITE_CHILD"); job != "" {
		if err := runChild(job); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild does one job against the file in KEYGATE_SQLITE_PATH.
func runChild(job string) error {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, os.Getenv("KEYGATE_SQLITE_PATH"))
	if err != nil {
		return err
	}
	defer s.Close()
	switch job {
	case "create":
		return childCreate(ctx, s, os.Getenv("KEYGATE_SQLITE_ORG"), os.Getenv("KEYGATE_SQLITE_START"))
	case "revoke":
		return s.RevokeToken(ctx, os.Getenv("KEYGATE_SQLITE_TOKEN"), time.Now())
	}
	return fmt.Errorf("unknown job %q", job)
}

// childCreate waits for the start file, then races 10 creates with a limit
// of 2 and prints how many passed.
func childCreate(ctx context.Context, s *sqlite.Store, orgID, startFile string) error {
	for {
		if _, err := os.Stat(startFile); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		failure error
	)
	for range 10 {
		wg.Go(func() {
			id := keygate.NewID("tok")
			tok := &keygate.Token{ID: id, OrganizationID: orgID, API: "cannmenus", Name: "child",
				Environment: "live", Hash: keygate.HashToken(id), Hint: "x", CreatedBy: "cli"}
			err := s.CreateToken(ctx, tok, 2)
			mu.Lock()
			defer mu.Unlock()
			switch keygate.ErrorCode(err) {
			case "":
				created++
			case keygate.ECONFLICT:
			default:
				failure = err
			}
		})
	}
	wg.Wait()
	if failure != nil {
		return failure
	}
	fmt.Printf("created=%d\n", created)
	return nil
}

// child starts this binary as a child doing job.
func child(t *testing.T, job string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"KEYGATE_SQLITE_CHILD=" + job}, env...)...)
	cmd.Stderr = os.Stderr
	return cmd
}

func TestTokenLimitAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "keygate.db")
	s := open(t, path)
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
	if err := s.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}

	start := filepath.Join(dir, "start")
	outputs := make([]strings.Builder, 3)
	cmds := make([]*exec.Cmd, 3)
	for i := range cmds {
		cmds[i] = child(t, "create", "KEYGATE_SQLITE_PATH="+path, "KEYGATE_SQLITE_ORG="+org.ID, "KEYGATE_SQLITE_START="+start)
		cmds[i].Stdout = &outputs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(start, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	created := 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
		var n int
		if _, err := fmt.Sscanf(outputs[i].String(), "created=%d", &n); err != nil {
			t.Fatalf("child %d printed %q", i, outputs[i].String())
		}
		created += n
	}
	if created != 2 {
		t.Errorf("%d creates passed a limit of 2 across 3 processes", created)
	}
	tokens, err := s.ListTokens(ctx, keygate.TokenFilter{OrganizationID: org.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 2 {
		t.Errorf("%d tokens stored, want 2", len(tokens))
	}
}

func TestRevocationInAnotherProcessReachesWatchers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := filepath.Join(t.TempDir(), "keygate.db")
	s := open(t, path)
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
	if err := s.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	tok := &keygate.Token{ID: keygate.NewID("tok"), OrganizationID: org.ID, API: "cannmenus", Name: "t",
		Environment: "live", Hash: keygate.HashToken("t"), Hint: "x", CreatedBy: "cli"}
	if err := s.CreateToken(ctx, tok, 0); err != nil {
		t.Fatal(err)
	}

	changes := make(chan keygate.Change, 100)
	watching := make(chan error, 1)
	go func() { watching <- s.WatchChanges(ctx, nil, func(c keygate.Change) { changes <- c }) }()
	probes := waitUntilWatching(t, s, org.ID, changes)

	if err := child(t, "revoke", "KEYGATE_SQLITE_PATH="+path, "KEYGATE_SQLITE_TOKEN="+tok.ID).Run(); err != nil {
		t.Fatalf("child: %v", err)
	}
	timeout := time.After(5 * time.Second)
	for received := false; !received; {
		select {
		case c := <-changes:
			if probes[c.ID] {
				continue
			}
			if c.Kind != keygate.ChangeToken || c.ID != tok.ID {
				t.Errorf("change = %+v, want the token's revocation", c)
			}
			received = true
		case <-timeout:
			t.Fatal("the revocation did not reach the watcher within 5s")
		}
	}
	cancel()
	if err := <-watching; err != nil {
		t.Errorf("WatchChanges returned %v", err)
	}
}

// waitUntilWatching revokes throwaway tokens until the watcher reports one,
// since WatchChanges delivers only what is committed after it starts. It
// returns the throwaway tokens' ids: some may still be on their way.
func waitUntilWatching(t *testing.T, s *sqlite.Store, orgID string, changes <-chan keygate.Change) map[string]bool {
	t.Helper()
	ctx := context.Background()
	probes := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		id := keygate.NewID("tok")
		probe := &keygate.Token{ID: id, OrganizationID: orgID, API: "probe", Name: "probe",
			Environment: "live", Hash: keygate.HashToken(id), Hint: "x", CreatedBy: "cli"}
		if err := s.CreateToken(ctx, probe, 0); err != nil {
			t.Fatal(err)
		}
		probes[id] = true
		if err := s.RevokeToken(ctx, id, time.Now()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-changes:
			return probes
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("WatchChanges delivered nothing within 10s")
	return nil
}
