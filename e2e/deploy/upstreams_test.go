package deploy_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/testenv"
)

// The Python, Node and PHP examples docs/upstreams.md includes, run as
// committed against a running keygate's JWKS: a real identity is accepted
// and read (org, scopes, entitlements); a forged, an expired and another
// API's identity are refused.
func TestUpstreamExamplesVerifyIdentity(t *testing.T) {
	s := startKeygate(t)
	jwks := "http://" + s.admin + "/.well-known/jwks.json"
	menus := upstreamSaw(t, "cannmenus", send(t, "GET", "http://"+s.srv.Addr("cannmenus")+"/v2/products?states=California", "X-Token", s.menus))
	events := upstreamSaw(t, "canskan", send(t, "GET", "http://"+s.srv.Addr("canskan")+"/api/v1/organization", "Authorization", "Bearer "+s.events))
	valid := menus.Header.Get("X-Keygate-Identity")
	otherAPI := events.Header.Get("X-Keygate-Identity")

	key, err := s.srv.Store().SigningKey(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, stranger, _ := ed25519.GenerateKey(nil)
	forged := signIdentity(t, stranger, key.ID, s.org.ID, time.Now().Add(time.Minute))
	expired := signIdentity(t, ed25519.NewKeyFromSeed(key.PrivateKey), key.ID, s.org.ID, time.Now().Add(-time.Minute))
	// The same key and claims, unexpired, pass: what refuses expired is
	// its expiry alone.
	fresh := signIdentity(t, ed25519.NewKeyFromSeed(key.PrivateKey), key.ID, s.org.ID, time.Now().Add(time.Minute))

	for _, lang := range []struct {
		name string
		cmd  func(stdin string) *exec.Cmd
	}{
		{"python", pythonExample(t)},
		{"node", nodeExample(t)},
		{"php", phpExample(t)},
	} {
		t.Run(lang.name, func(t *testing.T) {
			run := func(jwt string) (string, error) {
				cmd := lang.cmd(jwt)
				cmd.Args = append(cmd.Args, jwks, "cannmenus")
				cmd.Stdin = strings.NewReader(jwt)
				out, err := cmd.Output()
				if ee, ok := err.(*exec.ExitError); ok {
					return string(ee.Stderr), err
				}
				return string(out), err
			}
			out, err := run(valid)
			if err != nil {
				t.Fatalf("a real identity was refused: %v\n%s", err, out)
			}
			var got struct {
				Org          string               `json:"org"`
				OrgSlug      string               `json:"org_slug"`
				Plan         string               `json:"plan"`
				Scopes       []string             `json:"scopes"`
				Entitlements keygate.Entitlements `json:"entitlements"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			if got.Org != s.org.ID || got.OrgSlug != "acme" || got.Plan != "free" ||
				strings.Join(got.Scopes, " ") != "products:read" || strings.Join(got.Entitlements.States, ",") != "California" {
				t.Errorf("read %+v", got)
			}
			if out, err := run(fresh); err != nil {
				t.Fatalf("a JWT signed with keygate's key was refused: %v\n%s", err, out)
			}
			for name, jwt := range map[string]string{"forged": forged, "expired": expired, "another API's": otherAPI, "empty": ""} {
				if out, err := run(jwt); err == nil || !strings.Contains(out, "refused") {
					t.Errorf("%s identity: %v %s", name, err, out)
				}
			}
		})
	}
}

func signIdentity(t *testing.T, priv ed25519.PrivateKey, kid, org string, exp time.Time) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{
		"iss": keygate.IdentityIssuer, "sub": org, "aud": []string{"cannmenus"},
		"iat": exp.Add(-keygate.IdentityLifetime).Unix(), "nbf": exp.Add(-keygate.IdentityLifetime).Unix(), "exp": exp.Unix(),
		"org": org, "org_slug": "acme", "plan": "free", "api": "cannmenus", "scopes": []string{"products:read"},
		"entitlements": map[string][]string{"states": {"California"}, "brands": {}, "dispensaries": {}},
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// pythonExample finds a python3 with PyJWT (PyJWKClient) and cryptography.
func pythonExample(t *testing.T) func(string) *exec.Cmd {
	t.Helper()
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import jwt, cryptography; jwt.PyJWKClient").Run() == nil {
			script, _ := filepath.Abs("../../docs/upstreams/verify_identity.py")
			return func(string) *exec.Cmd { return exec.Command(py, script) }
		}
	}
	testenv.Missing(t, "no python3 with PyJWT and cryptography (Debian: python3-jwt python3-cryptography)")
	return nil
}

// nodeExample runs the Node example where its package (jose) is installed.
func nodeExample(t *testing.T) func(string) *exec.Cmd {
	t.Helper()
	node := program(t, "node", "")
	dir, _ := filepath.Abs("../../docs/upstreams/node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "jose")); err != nil {
		testenv.Missing(t, "docs/upstreams/node has no node_modules: run npm ci there")
	}
	return func(string) *exec.Cmd { return exec.Command(node, filepath.Join(dir, "verify-identity.mjs")) }
}

// phpExample runs the PHP example, which needs only PHP's sodium extension.
func phpExample(t *testing.T) func(string) *exec.Cmd {
	t.Helper()
	php := program(t, "php", "")
	if out, err := exec.Command(php, "-r", "echo function_exists('sodium_crypto_sign_verify_detached') ? 'yes' : 'no';").Output(); err != nil || string(out) != "yes" {
		testenv.Missing(t, "php has no sodium extension")
	}
	script, _ := filepath.Abs("../../docs/upstreams/php/verify_identity.php")
	return func(string) *exec.Cmd { return exec.Command(php, script) }
}
