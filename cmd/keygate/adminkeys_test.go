package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// admin-keys create prints the secret once; list shows id, name and hint
// but never the secret; revoke ends the key.
func TestCLIAdminKeysListAndRevoke(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keygate.yaml"), []byte("data_dir: .\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "admin-keys", "create", "--data-dir", dir, "--name", "ci")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	secret := lines[len(lines)-1]
	if !strings.HasPrefix(secret, "kgadm_") {
		t.Fatalf("create printed %q", out)
	}
	list, err := runCLI(t, "admin-keys", "list", "--data-dir", dir)
	if err != nil {
		t.Fatalf("list: %v\n%s", err, list)
	}
	if strings.Contains(list, secret) || !strings.Contains(list, "ci") || !strings.Contains(list, secret[len(secret)-4:]) {
		t.Fatalf("list:\n%s", list)
	}
	id := strings.Fields(strings.Split(strings.TrimSpace(list), "\n")[1])[0]
	if out, err := runCLI(t, "admin-keys", "revoke", "--data-dir", dir, id); err != nil || !strings.Contains(out, "revoked admin key "+id) {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if list, _ := runCLI(t, "admin-keys", "list", "--data-dir", dir); strings.Contains(list, id) {
		t.Fatalf("revoked key still listed:\n%s", list)
	}
	if out, err := runCLI(t, "admin-keys", "revoke", "--data-dir", dir, id); err == nil || !strings.Contains(err.Error()+out, "not found") {
		t.Fatalf("revoking twice: %v\n%s", err, out)
	}
}
