package oauth

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestMatchRedirectURI(t *testing.T) {
	tests := []struct {
		registered, requested string
		want                  bool
	}{
		{"https://app.example.com/cb", "https://app.example.com/cb", true},
		{"https://app.example.com/cb", "https://app.example.com/cb/", false},
		{"https://app.example.com/cb", "https://APP.example.com/cb", false},
		{"https://app.example.com/cb", "https://app.example.com:443/cb", false},
		{"https://app.example.com/cb?a=1", "https://app.example.com/cb?a=1", true},
		{"https://app.example.com/cb?a=1", "https://app.example.com/cb?a=2", false},
		{"https://app.example.com/cb", "https://app.example.com/cb#f", false},
		// RFC 8252 §7.3: any port on a loopback IP literal.
		{"http://127.0.0.1/cb", "http://127.0.0.1:51004/cb", true},
		{"http://127.0.0.1:8080/cb", "http://127.0.0.1:9090/cb", true},
		{"http://[::1]/cb", "http://[::1]:51004/cb", true},
		{"http://127.0.0.1/cb", "http://127.0.0.1:51004/other", false},
		{"http://127.0.0.1/cb", "http://127.0.0.1:51004/cb?x=1", false},
		{"http://127.0.0.1/cb", "http://user@127.0.0.1:51004/cb", false},
		{"http://127.0.0.1/cb", "https://127.0.0.1:51004/cb", false},
		{"http://127.0.0.1/cb", "http://[::1]:51004/cb", false},
		// "localhost" is a name, not a loopback IP: exact match only.
		{"http://localhost:3000/cb", "http://localhost:3000/cb", true},
		{"http://localhost:3000/cb", "http://localhost:3001/cb", false},
		{"http://localhost/cb", "http://127.0.0.1:3001/cb", false},
		{"https://app.example.com/cb", "", false},
	}
	for _, tt := range tests {
		if got := matchRedirectURI([]string{tt.registered}, tt.requested); got != tt.want {
			t.Errorf("match(%q, %q) = %v, want %v", tt.registered, tt.requested, got, tt.want)
		}
	}
}

func TestCheckRedirectURI(t *testing.T) {
	for uri, ok := range map[string]bool{
		"https://app.example.com/cb":      true,
		"http://localhost:3000/callback":  true,
		"http://127.0.0.1:3000/callback":  true,
		"http://[::1]/callback":           true,
		"http://app.example.com/cb":       false,
		"http://localhost.evil.com/cb":    false,
		"https://app.example.com/cb#frag": false,
		"https://user:pw@app.example.com": false,
		"myapp://callback":                false,
		"/relative":                       false,
		"javascript:alert(1)":             false,
		// A host not in ASCII could pose on the consent page as another
		// ("claude.ai" with a Cyrillic a); its xn-- form cannot.
		"https://cl\u0430ude.ai/cb":   false,
		"https://cl%D0%B0ude.ai/cb":   false,
		"https://xn--clude-3ve.ai/cb": true,
	} {
		if err := checkRedirectURI(uri); (err == nil) != ok {
			t.Errorf("checkRedirectURI(%q) = %v, want ok=%v", uri, err, ok)
		}
	}
}

func TestCanonicalResource(t *testing.T) {
	for in, want := range map[string]string{
		"https://mcp.example.com/mcp":  "https://mcp.example.com/mcp",
		"https://mcp.example.com/mcp/": "https://mcp.example.com/mcp",
		"HTTPS://MCP.Example.COM/mcp":  "https://mcp.example.com/mcp",
		"https://mcp.example.com":      "https://mcp.example.com",
		"https://mcp.example.com/":     "https://mcp.example.com",
		"http://127.0.0.1:8080/mcp":    "http://127.0.0.1:8080/mcp",
		"https://mcp.example.com/MCP":  "https://mcp.example.com/MCP",
	} {
		if got, err := canonicalResource(in); err != nil || got != want {
			t.Errorf("canonicalResource(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"mcp.example.com", "https://mcp.example.com#f", "ftp://mcp.example.com/x", "https://u@mcp.example.com/", ""} {
		if _, err := canonicalResource(bad); err == nil {
			t.Errorf("canonicalResource(%q) accepted", bad)
		}
	}
}

func TestVerifyPKCE(t *testing.T) {
	verifier := oauth2.GenerateVerifier()
	challenge := oauth2.S256ChallengeFromVerifier(verifier)
	if !validChallenge(challenge) || !verifyPKCE(verifier, challenge) {
		t.Fatal("a verifier does not match its own S256 challenge")
	}
	for name, v := range map[string]string{
		"other verifier":                    oauth2.GenerateVerifier(),
		"plain (verifier is the challenge)": challenge,
		"too short":                         verifier[:42],
		"too long":                          strings.Repeat("a", 129),
		"bad character":                     verifier[:42] + "+",
		"empty":                             "",
	} {
		if verifyPKCE(v, challenge) {
			t.Errorf("%s: verifier accepted", name)
		}
	}
	if verifyPKCE(challenge, challenge) {
		t.Error("the plain method is accepted: the challenge verifies itself")
	}
}

func TestCacheTTL(t *testing.T) {
	for header, want := range map[string]time.Duration{
		"":                      10 * time.Minute,
		"max-age=60":            time.Minute,
		"public, max-age=3600":  time.Hour,
		"max-age=31536000":      24 * time.Hour,
		"no-store":              0,
		"no-cache, max-age=600": 0,
		"max-age=nonsense":      0,
		`max-age="120"`:         2 * time.Minute,
		// Seconds that would overflow a Duration into a negative or short
		// one are still "longer than a day".
		"max-age=9223372037":          24 * time.Hour,
		"max-age=18446744073709551":   24 * time.Hour,
		"max-age=9223372036854775807": 24 * time.Hour,
	} {
		if got := cacheTTL(header); got != want {
			t.Errorf("cacheTTL(%q) = %v, want %v", header, got, want)
		}
	}
}

func TestCheckMetadataURL(t *testing.T) {
	for id, ok := range map[string]bool{
		"https://client.example.com/oauth/client.json": true,
		"https://client.example.com/c?v=1":             true,
		"https://client.example.com":                   false,
		"https://client.example.com/":                  false,
		"https://client.example.com/a/../b":            false,
		"https://client.example.com/./b":               false,
		"https://client.example.com/c#f":               false,
		"https://u:p@client.example.com/c":             false,
		"http://client.example.com/c":                  false,
		"https://cl\u0430ude.ai/client.json":           false,
		"https://cl%D0%B0ude.ai/client.json":           false,
		"https://xn--clude-3ve.ai/client.json":         true,
	} {
		if err := checkMetadataURL(id); (err == nil) != ok {
			t.Errorf("checkMetadataURL(%q) = %v, want ok=%v", id, err, ok)
		}
	}
}
