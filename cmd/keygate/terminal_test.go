package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/server"
)

// What the CLI prints from the audit log and the outbox was partly
// written by others: an email typed on the login page by anyone, a user
// agent, a mail server's reply. None of it reaches the operator's
// terminal as a control sequence (an escape can retitle the window,
// rewrite the lines above, or set the clipboard): control characters and
// text-reordering marks are printed as Go escapes.
func TestCLIPrintsNoTerminalControlsFromOthers(t *testing.T) {
	dir := t.TempDir()
	yaml := "data_dir: .\nadmin:\n  listen: 127.0.0.1:0\n" +
		"apis:\n  - name: menus\n    preset: cannmenus\n    listen: 127.0.0.1:0\n    upstream: http://127.0.0.1:9\n" +
		"    routes:\n      - path: /v2/products\n        methods: [GET]\n        access: token\n"
	cfgPath := filepath.Join(dir, "keygate.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := server.OpenStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hostile := "x\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\u009b31m\u202e@evil.example"
	if err := store.AppendAuditEntry(ctx, &keygate.AuditEntry{Action: keygate.AuditLoginFailed,
		Actor: keygate.Actor{Type: keygate.ActorUser, Name: hostile, Address: "203.0.113.9", UserAgent: hostile}}); err != nil {
		t.Fatal(err)
	}
	store.Close()

	out, err := runCLI(t, "audit", "list", "--config", cfgPath)
	if err != nil {
		t.Fatalf("audit list: %v\n%s", err, out)
	}
	if strings.ContainsAny(out, "\x1b\x07\u009b\u202e") {
		t.Errorf("audit list printed control characters:\n%q", out)
	}
	if !strings.Contains(out, `user:x\x1b]52;c;cm0gLXJmIH4=\a\x1b[2J\u009b31m\u202e@evil.example`) {
		t.Errorf("audit list does not show the name escaped:\n%s", out)
	}
}
