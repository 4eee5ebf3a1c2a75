package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// startTestSMTPD runs the email tests' aiosmtpd server (plain SMTP, no
// auth) and returns its port and the folder it writes messages to.
func startTestSMTPD(t *testing.T) (int, string) {
	t.Helper()
	py := ""
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import aiosmtpd").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no python3 with aiosmtpd (.ci/run installs python3-aiosmtpd)")
		}
		t.Skip("no python3 with aiosmtpd")
	}
	dir := t.TempDir()
	cmd := exec.Command(py, filepath.Join("..", "..", "email", "testdata", "smtpd.py"), dir, "0")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "PORT "))
	if err != nil {
		t.Fatalf("smtpd said %q", line)
	}
	return port, dir
}

// A member added through the CLI queues their email for the server to
// send; keygate email outbox shows it; keygate email test reaches the
// mail server at once.
func TestEmailCommands(t *testing.T) {
	port, received := startTestSMTPD(t)
	dir := t.TempDir()
	yaml := fmt.Sprintf("data_dir: .\nemail:\n  smtp_url: smtp://127.0.0.1:%d\n  from: keygate@acme.test\n", port)
	if err := os.WriteFile(filepath.Join(dir, "keygate.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, error) { return runCLI(t, append(args, "--data-dir", dir)...) }
	must := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("keygate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	must("orgs", "create", "--slug", "acme")
	t.Setenv("KEYGATE_PASSWORD", "correct horse battery staple")
	must("users", "create", "--email", "owner@acme.test", "--org", "acme", "--role", "owner")

	out := must("email", "outbox")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 ||
		!strings.Contains(lines[1], "pending") || !strings.Contains(lines[1], "member.added") || !strings.Contains(lines[1], "owner@acme.test") {
		t.Fatalf("outbox:\n%s", out)
	}
	if out := must("email", "outbox", "--state", "failed"); strings.Count(out, "\n") != 1 {
		t.Errorf("failed emails:\n%s", out)
	}
	if out, err := cli("email", "outbox", "--state", "lost"); err == nil || !strings.Contains(err.Error(), "--state must be pending, sent or failed") {
		t.Errorf("bad --state: %v\n%s", err, out)
	}

	out = must("email", "test", "--to", "ops@acme.test")
	if !strings.Contains(out, "accepted a test email to ops@acme.test") {
		t.Errorf("email test said %q", out)
	}
	files, _ := filepath.Glob(filepath.Join(received, "*.json"))
	if len(files) != 1 {
		t.Fatalf("the mail server got %d messages, want the test email", len(files))
	}
	b, _ := os.ReadFile(files[0])
	if !strings.Contains(string(b), "ops@acme.test") || !strings.Contains(string(b), "keygate test email") {
		t.Errorf("received %s", b)
	}
}
