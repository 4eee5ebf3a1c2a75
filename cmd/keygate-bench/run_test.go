package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestAllowEveryone(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/_keygate/auth", nil)
	req.Header.Set("X-Original-URI", "/v2/products?page=1")
	allowEveryone(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("status %d, want 200", rec.Code)
	}
	want := http.Header{"Cache-Control": {"no-store"}, "X-Keygate-Org": {"bench"}}
	if len(rec.Header()) != len(want) {
		t.Errorf("headers %v, want %v", rec.Header(), want)
	}
	for name, v := range want {
		if got := rec.Header().Values(name); len(got) != 1 || got[0] != v[0] {
			t.Errorf("%s: %q, want %q", name, got, v)
		}
	}
	if rec.Body.Len() != 0 {
		t.Errorf("body %q, want none", rec.Body)
	}
}

// TestParseAnswer: a header block as curl -D or http.Header.Write gives it
// is read back as the same header, less what net/http writes itself.
func TestParseAnswer(t *testing.T) {
	h, err := parseAnswer("HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nX-Keygate-Identity: a.b.c\r\nx-ratelimit-limit: 10\r\nDate: Tue, 01 Dec 2026 02:23:41 GMT\r\nContent-Length: 0\r\nX-Keygate-Scopes: a b\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{"Cache-Control": {"no-store"}, "X-Keygate-Identity": {"a.b.c"}, "X-Ratelimit-Limit": {"10"}, "X-Keygate-Scopes": {"a b"}}
	if len(h) != len(want) {
		t.Errorf("got %v, want %v", h, want)
	}
	for name, v := range want {
		if got := h.Values(name); len(got) != 1 || got[0] != v[0] {
			t.Errorf("%s: %q, want %q", name, got, v)
		}
	}
	if _, err := parseAnswer("no colon here\n"); err == nil {
		t.Error("a line without a colon was accepted")
	}
}

// TestNginxConfig: the four forward-auth servers are the same block but
// for who answers the check, and nginx accepts the file.
func TestNginxConfig(t *testing.T) {
	dir := t.TempDir()
	path, err := writeNginxConfig(dir, "bn_token")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for _, want := range []string{
		authRequestServer(portNginxAuth, authProxy("keygate")),
		authRequestServer(portNginxAuthNginx, "      add_header X-Keygate-Org bench;\n      return 200;\n"),
		authRequestServer(portNginxAuthGo, authProxy("go_auth")),
		"upstream go_auth {\n    server " + addr(portGoAuth) + ";",
		authRequestServer(portNginxAuthReplay, authProxy("go_auth_replay")),
		"upstream go_auth_replay {\n    server " + addr(portGoAuthReplay) + ";",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks\n%s\nin\n%s", want, conf)
		}
	}
	if n := strings.Count(conf, "auth_request /_keygate/auth;"); n != 4 {
		t.Errorf("%d auth_request servers, want 4", n)
	}

	nginx, err := lookPath("nginx")
	if err != nil {
		t.Skip("nginx is not installed")
	}
	out, err := exec.Command(nginx, "-t", "-p", dir, "-c", path, "-g", "pid "+filepath.Join(dir, "nginx.pid")+";").CombinedOutput()
	if err != nil {
		t.Errorf("nginx -t: %v\n%s", err, out)
	}
}
