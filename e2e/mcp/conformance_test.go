package mcp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/logtest"
)

// TestConformanceAuthorization runs the MCP conformance suite's
// authorization-server checks (npm @modelcontextprotocol/conformance,
// `conformance authorization`) against keygate. The suite prints an
// authorization URL for a person to open; the test plays that person
// (login and consent over HTTP) and lets keygate's redirect reach the
// suite's callback server, then requires every check to pass.
func TestConformanceAuthorization(t *testing.T) {
	node := requireNode(t)
	t.Parallel()
	s := sharedStack(t)
	port := freePort(t)
	out := t.TempDir()

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--import", "./node20.mjs",
		"node_modules/@modelcontextprotocol/conformance/dist/index.js", "authorization",
		"--url", s.issuer, "--client-id", conformanceClient, "--resource", s.mcpURL,
		"--port", strconv.Itoa(port), "--output-dir", out)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var log logtest.Buffer
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	authURL := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			log.Write([]byte(line + "\n"))
			if !sent && strings.HasPrefix(line, s.issuer+"/oauth/authorize?") {
				authURL <- line
				sent = true
			}
		}
		if !sent {
			close(authURL)
		}
	}()

	select {
	case u, ok := <-authURL:
		if !ok {
			cmd.Wait()
			t.Fatalf("the suite printed no authorization URL:\n%s", log.String())
		}
		back, err := approve(u, s.newUser(t), s.org.ID)
		if err != nil {
			t.Fatal(err)
		}
		if back.Host != "127.0.0.1:"+strconv.Itoa(port) || back.Path != "/callback" {
			t.Fatalf("keygate redirected to %s, not the suite's callback", back)
		}
		deliver(t, back.String())
	case <-ctx.Done():
		t.Fatalf("no authorization URL in time:\n%s", log.String())
	}

	err = cmd.Wait()
	checks := readChecks(t, out)
	t.Logf("conformance checks: %v", checks)
	if err != nil {
		t.Fatalf("conformance authorization failed: %v\n%s", err, log.String())
	}
	for _, id := range []string{"authorization-server-metadata", "authorization-server-metadata-cimd", "authorization-code-grant"} {
		if checks[id] != "SUCCESS" {
			t.Errorf("check %s: %q, want SUCCESS\n%s", id, checks[id], log.String())
		}
	}
	for id, status := range checks {
		if status != "SUCCESS" && status != "INFO" {
			t.Errorf("check %s: %s", id, status)
		}
	}
}

// deliver follows keygate's redirect to the suite's callback server, as
// the browser would, retrying while that server starts.
func deliver(t *testing.T, callback string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(callback)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("suite callback answered %d", resp.StatusCode)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("suite callback: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readChecks collects check id → status from the suite's checks.json files.
func readChecks(t *testing.T, dir string) map[string]string {
	t.Helper()
	checks := map[string]string{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "checks.json" {
			return err
		}
		var list []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		b, err := os.ReadFile(path)
		if err == nil && json.Unmarshal(b, &list) == nil {
			for _, c := range list {
				checks[c.ID] = c.Status
			}
		}
		return nil
	})
	if len(checks) == 0 {
		t.Fatalf("no checks.json under %s", dir)
	}
	return checks
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
