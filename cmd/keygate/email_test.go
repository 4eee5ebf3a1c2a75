package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/email/smtptest"
)

// A member added through the CLI queues their email for the server to
// send; keygate email outbox shows it; keygate email test reaches the
// mail server at once.
func TestEmailCommands(t *testing.T) {
	smtpd := smtptest.Start(t, smtptest.Options{})
	dir := t.TempDir()
	yaml := fmt.Sprintf("data_dir: .\nemail:\n  smtp_url: smtp://127.0.0.1:%d\n  from: keygate@acme.test\n", smtpd.Port)
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
	got := smtpd.Messages()
	if len(got) != 1 || got[0].Subject != "keygate test email" || strings.Join(got[0].RcptTos, ",") != "ops@acme.test" {
		t.Fatalf("the mail server got %+v, want the test email", got)
	}
}
