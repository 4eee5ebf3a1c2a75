package oauth_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/oauth"
)

// oauthErrors are the error codes the token endpoint may answer with
// (RFC 6749 section 5.2, RFC 8707).
var oauthErrors = []string{"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
	"unsupported_grant_type", "invalid_scope", "invalid_target"}

// FuzzTokenEndpoint posts arbitrary token requests, form body and
// Authorization header, to a running authorization server. In the input,
// $CODE stands for an authorization code (fresh ones first) of the public client $PUB
// (issued for $VERIFIER, $REDIRECT and $RESOURCE), $CONF and $SECRET for
// a confidential client. Whatever is sent: never a 5xx; the answer is
// JSON that no cache may keep; a refusal carries one of the RFC's error
// codes; tokens are issued only for the code with its own client,
// verifier and redirect URI; no client secret, code or verifier is ever
// echoed in an answer.
func FuzzTokenEndpoint(f *testing.F) {
	for _, seed := range [][3]string{
		{"grant_type=authorization_code&code=$CODE&client_id=$PUB&redirect_uri=$REDIRECT&code_verifier=$VERIFIER&resource=$RESOURCE", "", "application/x-www-form-urlencoded"},
		{"grant_type=authorization_code&code=$CODE&client_id=$PUB&redirect_uri=$REDIRECT&code_verifier=$VERIFIER", "", "application/x-www-form-urlencoded"},
		{"grant_type=authorization_code&code=$CODE&client_id=$PUB&redirect_uri=$REDIRECT&code_verifier=$VERIFIERx", "", "application/x-www-form-urlencoded"},
		{"grant_type=authorization_code&code=$CODE&client_id=$CONF&client_secret=$SECRET&redirect_uri=$REDIRECT&code_verifier=$VERIFIER", "", "application/x-www-form-urlencoded"},
		{"grant_type=authorization_code&code=$CODE&redirect_uri=$REDIRECT&code_verifier=$VERIFIER", "Basic $BASIC", "application/x-www-form-urlencoded; charset=utf-8"},
		{"grant_type=authorization_code&code=$CODE&code=$CODE&client_id=$PUB", "", "application/x-www-form-urlencoded"},
		{"grant_type=refresh_token&refresh_token=kgo_rt_x&client_id=$PUB", "", "application/x-www-form-urlencoded"},
		{"grant_type=client_credentials&client_id=$CONF&client_secret=$SECRET", "", "application/x-www-form-urlencoded"},
		{"grant_type=password&username=a&password=b&client_id=$PUB", "Basic %%%", "application/x-www-form-urlencoded"},
		{"%zz=1&grant_type=authorization_code", "", "application/x-www-form-urlencoded"},
		{"client_id=$CONF&client_secret=$SECRET&grant_type=authorization_code", "Basic $BASIC", "application/x-www-form-urlencoded"},
		{`{"grant_type":"authorization_code"}`, "", "application/json"},
		{"grant_type=authorization_code&code=kgo_ac_00000000000000000000000000000000000000&client_id=$PUB", "Bearer x", ""},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	h := newHarness(f)
	public := h.registerPublic(redirectURI)
	status, reg := h.register(map[string]any{"client_name": "Server", "redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "client_secret_post"})
	if status != http.StatusCreated {
		f.Fatalf("register: %d %v", status, reg)
	}
	conf, secret := reg["client_id"].(string), reg["client_secret"].(string)
	verifier := oauth2.GenerateVerifier()
	// Codes are issued before fuzzing (each takes the browser's way
	// through login and consent); once they are used, $CODE is one that
	// was.
	codes := make([]string, 16)
	for i := range codes {
		codes[i] = h.codeFor(public, verifier)
	}
	spent := codes[0]

	f.Fuzz(func(t *testing.T, body, authorization, contentType string) {
		if !validValue(authorization) || !validValue(contentType) || len(body) > 8<<10 {
			t.Skip() // net/http refuses such headers before keygate sees them
		}
		h.t = t
		var code string
		if strings.Contains(body, "$CODE") {
			if len(codes) > 0 {
				code, codes = codes[0], codes[1:]
			} else {
				code = spent // used up: the fuzzer keeps the refusals coming
			}
		}
		r := strings.NewReplacer("$CODE", code, "$PUB", url.QueryEscape(public), "$CONF", url.QueryEscape(conf),
			"$SECRET", url.QueryEscape(secret), "$VERIFIER", verifier, "$REDIRECT", url.QueryEscape(redirectURI),
			"$RESOURCE", url.QueryEscape(h.api().resource))
		body = r.Replace(body)
		authorization = strings.ReplaceAll(authorization, "$BASIC", basicCredentials(conf, secret))

		req, _ := http.NewRequest(http.MethodPost, h.issuer+oauth.PathToken, strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		resp, err := tokenClient.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", oauth.PathToken, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer := string(raw)

		if resp.StatusCode >= 500 {
			t.Fatalf("%q: %d %s", body, resp.StatusCode, answer)
		}
		if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%q: answered with Content-Type %q, Cache-Control %q", body, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
		}
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%q: answer %q is not JSON", body, answer)
		}
		form, _ := url.ParseQuery(body)
		for _, s := range []string{secret, code, verifier} {
			if s != "" && strings.Contains(answer, s) && !keyHolds(form, s) {
				t.Fatalf("%q: answer %q echoes a secret", body, answer)
			}
		}
		if resp.StatusCode != http.StatusOK {
			if e, _ := out["error"].(string); !slices.Contains(oauthErrors, e) {
				t.Fatalf("%q: %d with error %q", body, resp.StatusCode, out["error"])
			}
			return
		}
		at, _ := out["access_token"].(string)
		if !oauth.IsAccessToken(at) || out["token_type"] != "Bearer" {
			t.Fatalf("%q: 200 without a bearer access token: %s", body, answer)
		}
		if form.Get("grant_type") != keygate.OAuthGrantAuthorizationCode || code == "" || form.Get("code") != code ||
			form.Get("code_verifier") != verifier || form.Get("redirect_uri") != redirectURI {
			t.Fatalf("tokens issued for %q", body)
		}
		if id := form.Get("client_id"); id != public && !(id == "" && authorization == "") {
			t.Fatalf("tokens of %s's code issued to %q", public, body)
		}
	})
}

// tokenClient gives up on an answer that does not come: a hang is a
// failure too.
var tokenClient = &http.Client{Timeout: 10 * time.Second}

// basicCredentials is HTTP Basic as RFC 6749 section 2.3.1 has clients
// send it: both parts form-encoded first.
func basicCredentials(id, secret string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// keyHolds reports whether s stands in a parameter's name, where an
// answer may name it ("The request repeats …").
func keyHolds(form url.Values, s string) bool {
	for k := range form {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
