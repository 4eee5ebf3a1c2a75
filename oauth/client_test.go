package oauth_test

import (
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/session"
)

func TestRegistrationValidation(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name     string
		metadata map[string]any
		error    string
	}{
		{"no redirect URIs", map[string]any{"client_name": "x"}, "invalid_redirect_uri"},
		{"http on a public host", map[string]any{"redirect_uris": []string{"http://example.com/cb"}}, "invalid_redirect_uri"},
		{"custom scheme", map[string]any{"redirect_uris": []string{"cursor://anysphere.cursor-retrieval/oauth/callback"}}, "invalid_redirect_uri"},
		{"fragment", map[string]any{"redirect_uris": []string{"https://client.example.com/cb#x"}}, "invalid_redirect_uri"},
		{"relative", map[string]any{"redirect_uris": []string{"/cb"}}, "invalid_redirect_uri"},
		{"too many", map[string]any{"redirect_uris": strings.Split(strings.Repeat("https://c.example.com/cb,", 11), ",")[:11]}, "invalid_redirect_uri"},
		{"client credentials", map[string]any{"redirect_uris": []string{redirectURI}, "grant_types": []string{"client_credentials"}}, "invalid_client_metadata"},
		{"implicit", map[string]any{"redirect_uris": []string{redirectURI}, "response_types": []string{"token"}}, "invalid_client_metadata"},
		{"private_key_jwt", map[string]any{"redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"},
		{"name too long", map[string]any{"redirect_uris": []string{redirectURI}, "client_name": strings.Repeat("x", 101)}, "invalid_client_metadata"},
		{"name with a right-to-left override", map[string]any{"redirect_uris": []string{redirectURI}, "client_name": "Claude \u202eetiuS"}, "invalid_client_metadata"},
		{"name with a directional isolate", map[string]any{"redirect_uris": []string{redirectURI}, "client_name": "\u2067Claude"}, "invalid_client_metadata"},
		{"name with a C1 control", map[string]any{"redirect_uris": []string{redirectURI}, "client_name": "Claude\u009b31m"}, "invalid_client_metadata"},
		{"redirect URI on a look-alike host", map[string]any{"redirect_uris": []string{"https://cl\u0430ude.ai/api/mcp/auth_callback"}}, "invalid_redirect_uri"},
		{"home page not https", map[string]any{"redirect_uris": []string{redirectURI}, "client_uri": "http://claude.ai"}, "invalid_client_metadata"},
		{"home page followed by words", map[string]any{"redirect_uris": []string{redirectURI}, "client_uri": "https://claude.ai (checked by keygate)"}, "invalid_client_metadata"},
		{"home page with a right-to-left override", map[string]any{"redirect_uris": []string{redirectURI}, "client_uri": "https://claude.ai\u202e/x"}, "invalid_client_metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.register(tt.metadata)
			wantOAuthError(t, status, body, http.StatusBadRequest, tt.error)
		})
	}
	t.Run("not JSON", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, h.issuer+oauth.PathRegister, strings.NewReader("redirect_uris=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		status, body, _ := doJSON(t, req)
		wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_client_metadata")
	})
}

// TestConfidentialRegisteredClient: a client registered without an auth
// method gets a secret for HTTP Basic (RFC 7591 §2) and must use it.
func TestConfidentialRegisteredClient(t *testing.T) {
	h := newHarness(t)
	status, reg := h.register(map[string]any{"client_name": "Server-side client", "redirect_uris": []string{"https://app.example.com/cb"}})
	if status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, reg)
	}
	secret, _ := reg["client_secret"].(string)
	if reg["token_endpoint_auth_method"] != "client_secret_basic" || !strings.HasPrefix(secret, "kgo_cs_") || reg["client_secret_expires_at"] != 0.0 {
		t.Fatalf("registration %v, want a kgo_cs_ secret for client_secret_basic that does not expire", reg)
	}
	clientID := reg["client_id"].(string)
	stored, err := h.store.FindOAuthClient(h.ctx, clientID)
	h.must("FindOAuthClient", err)
	if stored.SecretHash != keygate.HashToken(secret) {
		t.Error("the stored client does not keep the secret's hash")
	}

	cfg := &oauth2.Config{
		ClientID: clientID, ClientSecret: secret, RedirectURL: "https://app.example.com/cb",
		Endpoint: oauth2.Endpoint{AuthURL: h.issuer + oauth.PathAuthorize, TokenURL: h.issuer + oauth.PathToken, AuthStyle: oauth2.AuthStyleInHeader},
	}
	exchange := func(cfg *oauth2.Config) error {
		verifier := oauth2.GenerateVerifier()
		back := h.authorize(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "")
		_, err := cfg.Exchange(h.ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
		return err
	}
	if err := exchange(cfg); err != nil {
		t.Fatalf("exchange with the secret: %v", err)
	}
	wrong := *cfg
	wrong.ClientSecret = "kgo_cs_wrong"
	var rerr *oauth2.RetrieveError
	if err := exchange(&wrong); !asRetrieveError(err, &rerr) || rerr.Response.StatusCode != http.StatusUnauthorized ||
		rerr.ErrorCode != "invalid_client" || rerr.Response.Header.Get("WWW-Authenticate") != `Basic realm="keygate"` {
		t.Errorf("exchange with a wrong secret: %v, want 401 invalid_client with a Basic challenge", err)
	}
	status, body, _ := h.postForm(oauth.PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {"kgo_ac_x"}, "client_id": {clientID}}, "", "")
	wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_client")
}

func asRetrieveError(err error, target **oauth2.RetrieveError) bool {
	e, ok := err.(*oauth2.RetrieveError)
	if ok {
		*target = e
	}
	return ok
}

func TestPreRegisteredClient(t *testing.T) {
	h := newHarness(t, func(o *harnessOptions) {
		o.config = func(c *oauth.Config) {
			c.Clients = []*keygate.OAuthClient{{
				ID: "claude", Name: "Claude", TokenEndpointAuthMethod: keygate.OAuthAuthNone,
				RedirectURIs: []string{"https://claude.ai/api/mcp/auth_callback"},
				GrantTypes:   []string{keygate.OAuthGrantAuthorizationCode, keygate.OAuthGrantRefreshToken},
			}}
		}
	})
	b := newBrowser(t)
	verifier := oauth2.GenerateVerifier()
	authURL := h.authURL("claude", verifier, url.Values{"redirect_uri": {"https://claude.ai/api/mcp/auth_callback"}})
	consent := b.login(b.get(authURL), userEmail, userPassword)
	for _, want := range []string{"Allow <strong>Claude</strong>", "registered by your keygate administrator", "sent to <strong>claude.ai</strong>"} {
		if !strings.Contains(consent.body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	if strings.Contains(consent.body, "localhost") {
		t.Error("consent page warns about localhost for an https redirect")
	}
	back := b.decide(consent, "approve", "")
	status, body := h.exchange("claude", back.location.Query().Get("code"), verifier, url.Values{"redirect_uri": {"https://claude.ai/api/mcp/auth_callback"}})
	if status != http.StatusOK || body["refresh_token"] == nil {
		t.Errorf("exchange: %d %v", status, body)
	}
}

func TestPreRegisteredClientValidated(t *testing.T) {
	h := newHarness(t)
	for _, c := range []*keygate.OAuthClient{
		{ID: "", RedirectURIs: []string{redirectURI}},
		{ID: "web", RedirectURIs: []string{"http://example.com/cb"}},
		{ID: "https://client.example.com/meta.json", RedirectURIs: []string{redirectURI}},
		{ID: "secretless", RedirectURIs: []string{redirectURI}, TokenEndpointAuthMethod: keygate.OAuthAuthSecretBasic},
		{ID: "twice", RedirectURIs: []string{redirectURI}},
	} {
		clients := []*keygate.OAuthClient{c}
		if c.ID == "twice" {
			clients = append(clients, c)
		}
		_, err := oauth.New(oauth.Config{Store: h.store, Sessions: &session.Manager{Sessions: h.store, Users: h.store},
			Issuer: "http://127.0.0.1:1", Clients: clients})
		if err == nil || !strings.Contains(err.Error(), "client") {
			t.Errorf("client %+v: error %v, want it refused", c, err)
		}
	}
}

// metadataServer serves Client ID Metadata Documents over TLS and counts
// fetches.
type metadataServer struct {
	srv     *httptest.Server
	fetches atomic.Int32
	docs    map[string]func(id string) (int, http.Header, string)
}

func newMetadataServer(t *testing.T) *metadataServer {
	m := &metadataServer{docs: map[string]func(string) (int, http.Header, string){}}
	m.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.fetches.Add(1)
		doc, ok := m.docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		status, header, body := doc(m.srv.URL + r.URL.Path)
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *metadataServer) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(m.srv.Certificate())
	return pool
}

func clientDocument(fields map[string]any) string {
	b, _ := json.Marshal(fields)
	return string(b)
}

func TestMetadataDocumentClient(t *testing.T) {
	m := newMetadataServer(t)
	h := newHarness(t, func(o *harnessOptions) {
		o.config = func(c *oauth.Config) { c.AllowPrivateCIMD = true; c.CIMDRootCAs = m.roots() }
	})
	m.docs["/oauth/client.json"] = func(id string) (int, http.Header, string) {
		return 200, http.Header{"Content-Type": {"application/json"}}, clientDocument(map[string]any{
			"client_id": id, "client_name": "Metadata Client", "redirect_uris": []string{redirectURI},
			"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none",
		})
	}
	clientID := m.srv.URL + "/oauth/client.json"
	verifier := oauth2.GenerateVerifier()
	b := newBrowser(t)
	consent := b.login(b.get(h.authURL(clientID, verifier, nil)), userEmail, userPassword)
	host := strings.TrimPrefix(m.srv.URL, "https://")
	if !strings.Contains(consent.body, "Allow <strong>Metadata Client</strong>") || !strings.Contains(consent.body, "published at <strong>"+host+"</strong>") {
		t.Errorf("consent page does not name the document's client and host: %s", consent.body)
	}
	back := b.decide(consent, "approve", "")
	status, body := h.exchange(clientID, back.location.Query().Get("code"), verifier, nil)
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, body)
	}
	if p := call(t, h.api().resource, bearer(body["access_token"].(string))); p.status != http.StatusOK {
		t.Errorf("MCP call: %d", p.status)
	}
	if n := m.fetches.Load(); n != 1 {
		t.Errorf("document fetched %d times for one flow, want 1 (cached)", n)
	}
}

func TestMetadataDocumentRefused(t *testing.T) {
	m := newMetadataServer(t)
	h := newHarness(t, func(o *harnessOptions) {
		o.config = func(c *oauth.Config) { c.AllowPrivateCIMD = true; c.CIMDRootCAs = m.roots() }
	})
	valid := func(id string) map[string]any {
		return map[string]any{"client_id": id, "client_name": "C", "redirect_uris": []string{redirectURI}}
	}
	json200 := func(fields func(id string) map[string]any) func(string) (int, http.Header, string) {
		return func(id string) (int, http.Header, string) {
			return 200, http.Header{"Content-Type": {"application/json"}}, clientDocument(fields(id))
		}
	}
	tests := []struct {
		name    string
		path    string
		doc     func(string) (int, http.Header, string)
		message string
	}{
		{"client_id differs from the URL", "/other.json", json200(func(id string) map[string]any {
			return valid(strings.TrimSuffix(id, "other.json") + "client.json")
		}), "its client_id is not its own URL"},
		{"larger than 5 KB", "/big.json", json200(func(id string) map[string]any {
			d := valid(id)
			d["client_uri"] = "https://c.example.com/" + strings.Repeat("a", 5<<10)
			return d
		}), "larger than 5 KB"},
		{"publishes a secret", "/secret.json", json200(func(id string) map[string]any {
			d := valid(id)
			d["client_secret"] = "s3cret"
			return d
		}), "contains a client_secret"},
		{"confidential", "/jwt.json", json200(func(id string) map[string]any {
			d := valid(id)
			d["token_endpoint_auth_method"] = "private_key_jwt"
			return d
		}), "only public clients"},
		{"http redirect URI", "/http.json", json200(func(id string) map[string]any {
			d := valid(id)
			d["redirect_uris"] = []string{"http://client.example.com/cb"}
			return d
		}), "Redirect URIs must be absolute https URLs"},
		{"redirect URI not listed", "/elsewhere.json", json200(func(id string) map[string]any {
			d := valid(id)
			d["redirect_uris"] = []string{"https://client.example.com/cb"}
			return d
		}), "not one the application registered"},
		{"response head over egress's bound", "/padded.json", func(id string) (int, http.Header, string) {
			return 200, http.Header{"Content-Type": {"application/json"}, "X-Padding": {strings.Repeat("x", 1<<20)}}, clientDocument(valid(id))
		}, "metadata document: the request failed"},
		{"not JSON", "/html.json", func(string) (int, http.Header, string) { return 200, nil, "<html>" }, "not a JSON object"},
		{"not found", "/missing.json", nil, "answered HTTP 404"},
		{"redirects", "/moved.json", func(string) (int, http.Header, string) {
			return http.StatusFound, http.Header{"Location": {"/client.json"}}, ""
		}, "answered HTTP 302"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.doc != nil {
				m.docs[tt.path] = tt.doc
			}
			p := newBrowser(t).get(h.authURL(m.srv.URL+tt.path, oauth2.GenerateVerifier(), nil))
			if p.status != http.StatusBadRequest || p.location != nil || !strings.Contains(p.body, tt.message) {
				t.Errorf("status %d, Location %v, want 400 saying %q; body %s", p.status, p.location, tt.message, p.body)
			}
		})
	}
	t.Run("URL without path", func(t *testing.T) {
		p := newBrowser(t).get(h.authURL(m.srv.URL, oauth2.GenerateVerifier(), nil))
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "must have a path") {
			t.Errorf("status %d, body %s", p.status, p.body)
		}
	})
}

// TestMetadataDocumentPrivateAddress: without AllowPrivateCIMD keygate does
// not connect to a loopback address at all.
func TestMetadataDocumentPrivateAddress(t *testing.T) {
	m := newMetadataServer(t)
	h := newHarness(t, func(o *harnessOptions) {
		o.config = func(c *oauth.Config) { c.CIMDRootCAs = m.roots() }
	})
	m.docs["/client.json"] = func(id string) (int, http.Header, string) {
		return 200, nil, clientDocument(map[string]any{"client_id": id, "redirect_uris": []string{redirectURI}})
	}
	for _, clientID := range []string{m.srv.URL + "/client.json", strings.Replace(m.srv.URL, "127.0.0.1", "localhost", 1) + "/client.json"} {
		p := newBrowser(t).get(h.authURL(clientID, oauth2.GenerateVerifier(), nil))
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "its address is not a public one") {
			t.Errorf("%s: status %d, body %s", clientID, p.status, p.body)
		}
	}
	if n := m.fetches.Load(); n != 0 {
		t.Errorf("the private address was fetched %d times", n)
	}
}

func TestMetadataDocumentCacheControl(t *testing.T) {
	m := newMetadataServer(t)
	h := newHarness(t, func(o *harnessOptions) {
		o.config = func(c *oauth.Config) { c.AllowPrivateCIMD = true; c.CIMDRootCAs = m.roots() }
	})
	m.docs["/client.json"] = func(id string) (int, http.Header, string) {
		return 200, http.Header{"Cache-Control": {"no-store"}}, clientDocument(map[string]any{"client_id": id, "redirect_uris": []string{redirectURI}})
	}
	for i := 1; i <= 2; i++ {
		p := newBrowser(t).get(h.authURL(m.srv.URL+"/client.json", oauth2.GenerateVerifier(), nil))
		if p.status != http.StatusOK {
			t.Fatalf("authorize: %d %s", p.status, p.body)
		}
		if n := m.fetches.Load(); n != int32(i) {
			t.Errorf("after %d requests the no-store document was fetched %d times", i, n)
		}
	}

}
