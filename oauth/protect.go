package oauth

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/keygate/keygate"
)

// ProtectMCP guards one API's MCP endpoint, served on the API's listener.
// resourceURL is the endpoint's public URL as clients use it, e.g.
// "https://api.example.com/mcp": the audience of its tokens and the
// `resource` of its RFC 9728 metadata.
//
// The handler answers the protected resource metadata at
// /.well-known/oauth-protected-resource followed by the endpoint's path,
// and at the root form; every other request is the MCP endpoint. A request
// with a valid access token issued for this endpoint is passed to forward
// with the identity of the grant's organization (read fresh, so changed
// entitlements apply at once) and without the Authorization header; forward
// adds keygate's identity headers. apiToken, when not nil, authenticates
// the API's own token header instead, for clients without OAuth, and
// returns an error with code ETOKENMISSING when there is none; it sets the
// rate limit headers of a refusal on h.
//
// failures, when not nil, is the API's failed-authentication budget per
// client address: a refused access token counts against it as a refused
// API token does, an address that has spent it is refused 429 before its
// token is looked up, and every such answer carries the rate limit
// headers (Retry-After on a 429), so guessing access tokens on the MCP
// endpoint is limited like guessing API tokens on the routes.
//
// ProtectMCP panics when resourceURL is not an absolute http(s) URL or is
// already another API's: both are wiring mistakes config validation
// catches first.
func (s *Server) ProtectMCP(api *keygate.API, resourceURL string, forward func(w http.ResponseWriter, r *http.Request, id *keygate.Identity),
	apiToken func(h http.Header, r *http.Request) (*keygate.Identity, error), failures FailedAuthBudget) http.Handler {
	res, err := s.addResource(api, resourceURL)
	if err != nil {
		panic(err)
	}
	return &mcpGuard{server: s, res: res, forward: forward, apiToken: apiToken, failures: failures}
}

// FailedAuthBudget is an API's budget of failed authentications per
// client address; *gateway.Gateway keeps one.
type FailedAuthBudget interface {
	// FailedAuthSpent reports whether r's client has spent the budget,
	// setting the refusal's rate limit headers on h when it has.
	FailedAuthSpent(h http.Header, r *http.Request) bool
	// CountFailedAuth charges one refused credential to r's client and
	// sets the rate limit headers on h. It returns an error with code
	// ERATELIMITED once a limit is exceeded, EUNAVAILABLE when the limiter
	// cannot be reached, and nil otherwise.
	CountFailedAuth(h http.Header, r *http.Request) error
}

type mcpGuard struct {
	server   *Server
	res      *resource
	forward  func(http.ResponseWriter, *http.Request, *keygate.Identity)
	apiToken func(http.Header, *http.Request) (*keygate.Identity, error)
	failures FailedAuthBudget
}

func (g *mcpGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; p == pathProtectedResource || p == pathProtectedResource+g.res.path {
		g.serveMetadata(w, r)
		return
	}
	// Browser-based clients need CORS to read WWW-Authenticate and send
	// Authorization. No cookie is ever involved, so any origin may.
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "WWW-Authenticate, Mcp-Session-Id, Mcp-Protocol-Version")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		}
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	id, fail := g.authenticate(w.Header(), r)
	if fail != nil {
		g.refuse(w, fail)
		return
	}
	if _, ok := r.Header["Authorization"]; ok {
		// Authorization on the MCP endpoint is for keygate alone, the
		// field it read or any other (an access token sent in a second
		// field, or without its scheme, beside an API token): the MCP
		// server gets keygate's identity instead. forward does the same
		// for the API's own token header.
		r = r.Clone(r.Context())
		r.Header.Del("Authorization")
	}
	g.forward(w, r, id)
}

// refusal is why a request to the MCP endpoint is turned away.
type refusal struct {
	status      int
	code        string // RFC 6750 error code; "" when no credentials came
	description string
	scope       bool // name the endpoint's scopes in the challenge
}

func unauthenticated(description string) *refusal {
	return &refusal{status: http.StatusUnauthorized, code: "invalid_token", description: description, scope: true}
}

// authenticate finds who the request acts for and checks that it holds
// every scope the endpoint needs, whichever credential it came with: an
// API token narrowed to other scopes must not reach tools an OAuth grant
// with the same scopes cannot.
func (g *mcpGuard) authenticate(h http.Header, r *http.Request) (*keygate.Identity, *refusal) {
	id, fail := g.identify(h, r)
	if fail != nil {
		return nil, fail
	}
	if !keygate.HasAll(id.Scopes, g.res.scopes) {
		return nil, &refusal{status: http.StatusForbidden, code: "insufficient_scope", scope: true,
			description: "This MCP endpoint needs the scopes " + strings.Join(g.res.scopes, " ") + "."}
	}
	return id, nil
}

// identify reads the credential: an OAuth access token in Authorization:
// Bearer, or else the API's own token when allowed. A bearer token that
// is refused is charged to the client's failed-authentication budget (the
// API token's refusals are charged by apiToken); asking with no
// credentials at all is not, since every MCP client asks so first to
// discover OAuth.
func (g *mcpGuard) identify(h http.Header, r *http.Request) (*keygate.Identity, *refusal) {
	bearer, hasBearer := bearerToken(r)
	if hasBearer && IsAccessToken(bearer) {
		if g.failures != nil && keygate.WellFormedToken(bearer, accessTokenPrefix) && g.failures.FailedAuthSpent(h, r) {
			return nil, refusalOf(errBudgetSpent)
		}
		id, fail := g.server.verifyAccessToken(r.Context(), bearer, g.res)
		if fail != nil && fail.code == "invalid_token" {
			fail = g.charge(h, r, fail)
		}
		return id, fail
	}
	if g.apiToken != nil {
		id, err := g.apiToken(h, r)
		if err == nil {
			return id, nil
		}
		if keygate.ErrorCode(err) != keygate.ETOKENMISSING {
			return nil, refusalOf(err)
		}
	}
	if hasBearer {
		return nil, g.charge(h, r, unauthenticated("The access token is invalid."))
	}
	return nil, &refusal{status: http.StatusUnauthorized, description: "This MCP endpoint needs an OAuth access token.", scope: true}
}

// charge counts a refused bearer token against the client's budget and
// returns what to answer: fail, or 429 (503 when the limiter is down).
func (g *mcpGuard) charge(h http.Header, r *http.Request, fail *refusal) *refusal {
	if g.failures == nil {
		return fail
	}
	if err := g.failures.CountFailedAuth(h, r); err != nil {
		return refusalOf(err)
	}
	return fail
}

// errBudgetSpent answers as the limiter's own refusal does.
var errBudgetSpent = keygate.Errorf(keygate.ERATELIMITED, "Too many requests.")

// refusalOf maps the gateway's API token errors to MCP answers: the MCP
// endpoint speaks RFC 6750 whatever the API's preset says, because MCP
// clients act on WWW-Authenticate and not on a REST API's error bodies.
func refusalOf(err error) *refusal {
	msg := keygate.ErrorMessage(err)
	switch keygate.ErrorCode(err) {
	case keygate.ETOKENINVALID, keygate.ETOKENEXPIRED:
		return unauthenticated(msg)
	case keygate.ESCOPE:
		return &refusal{status: http.StatusForbidden, code: "insufficient_scope", description: msg, scope: true}
	case keygate.EPLAN, keygate.EENTITLEMENT, keygate.EFORBIDDEN:
		return &refusal{status: http.StatusForbidden, code: "access_denied", description: msg}
	case keygate.ERATELIMITED:
		// Retry-After and X-RateLimit-* come from the limit that refused.
		return &refusal{status: http.StatusTooManyRequests, code: "rate_limited", description: msg}
	case keygate.EUNAVAILABLE:
		return &refusal{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: msg}
	}
	return &refusal{status: http.StatusInternalServerError, code: "server_error", description: "Internal error."}
}

// refuse answers with the RFC 6750 challenge MCP clients follow: where the
// metadata is, what scopes to ask for, and for a refused token why.
func (g *mcpGuard) refuse(w http.ResponseWriter, f *refusal) {
	if f.status == http.StatusUnauthorized || f.code == "insufficient_scope" {
		var params []string
		if f.code != "" {
			params = append(params, "error="+quoteParam(f.code))
		}
		if f.scope && len(g.res.scopes) > 0 {
			params = append(params, "scope="+quoteParam(strings.Join(g.res.scopes, " ")))
		}
		params = append(params, "resource_metadata="+quoteParam(g.res.metadataURL))
		if f.code != "" {
			params = append(params, "error_description="+quoteParam(f.description))
		}
		if f.code == "" {
			// The MCP specification's example puts resource_metadata first.
			slices.Reverse(params)
		}
		w.Header().Set("WWW-Authenticate", "Bearer "+strings.Join(params, ", "))
	}
	code := f.code
	if code == "" {
		code = "unauthorized"
	}
	writeJSON(w, f.status, map[string]string{"error": code, "error_description": f.description})
}

// quoteParam writes an auth-param value as an RFC 9110 quoted-string.
func quoteParam(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// verifyAccessToken checks an access token for the endpoint res and builds
// the identity it acts for. Everything that can change after the token was
// issued is read now: the grant (revocation), the membership of the user
// who approved it, and the organization's plan and entitlements. Each read
// runs under its own deadline (StoreTimeout), so a database that stops
// answering gets the client a 503 within it rather than a hang.
func (s *Server) verifyAccessToken(ctx context.Context, token string, res *resource) (*keygate.Identity, *refusal) {
	if !keygate.WellFormedToken(token, accessTokenPrefix) {
		return nil, unauthenticated("The access token is invalid.")
	}
	var tok *keygate.OAuthToken
	var grant *keygate.OAuthGrant
	err := s.read(ctx, func(ctx context.Context) (err error) {
		tok, grant, err = s.findTokenGrant(ctx, keygate.HashToken(token))
		return err
	})
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return nil, unauthenticated("The access token is invalid.")
	} else if err != nil {
		return nil, s.storeRefusal(err)
	}
	switch {
	case tok.Kind != keygate.OAuthAccessToken:
		return nil, unauthenticated("The access token is invalid.")
	case tok.Expired(s.now()):
		return nil, unauthenticated("The access token expired.")
	case !grant.Active():
		return nil, unauthenticated("The access token was revoked.")
	case grant.Resource != res.url:
		return nil, unauthenticated("The access token was issued for another resource.")
	}
	var ms []*keygate.Membership
	err = s.read(ctx, func(ctx context.Context) (err error) {
		ms, err = s.store.ListMemberships(ctx, keygate.MembershipFilter{OrganizationID: grant.OrganizationID, UserID: grant.UserID})
		return err
	})
	if err != nil {
		return nil, s.storeRefusal(err)
	}
	if len(ms) == 0 {
		return nil, unauthenticated("The user who approved this access is no longer a member of the organization.")
	}
	var org *keygate.Organization
	err = s.read(ctx, func(ctx context.Context) (err error) {
		org, err = s.store.FindOrganizationByID(ctx, grant.OrganizationID)
		return err
	})
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return nil, unauthenticated("The organization no longer exists.")
	} else if err != nil {
		return nil, s.storeRefusal(err)
	}
	return &keygate.Identity{
		OrganizationID:   org.ID,
		OrganizationSlug: org.Slug,
		Plan:             org.Plan,
		Entitlements:     org.Entitlements,
		ClientID:         grant.ClientID,
		UserID:           grant.UserID,
		Scopes:           slices.Clone(tok.ScopesOf(grant)),
		API:              res.api.Name,
	}, nil
}

// read runs one store read made for a request under its own deadline.
func (s *Server) read(ctx context.Context, f func(context.Context) error) error {
	rctx, cancel := keygate.StoreContext(ctx, s.storeTimeout)
	defer cancel()
	return f(rctx)
}

func (s *Server) storeRefusal(err error) *refusal {
	s.log.Error("oauth: checking an access token failed", "err", err)
	return &refusal{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: "keygate could not check the token; try again."}
}

// protectedResourceMetadata is the RFC 9728 document.
type protectedResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
}

// serveMetadata answers both the path form and the root form with the
// endpoint's document: an API listener serves one MCP endpoint, and
// clients written to 2025-06-18 look at the root.
func (g *mcpGuard) serveMetadata(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, MCP-Protocol-Version")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "invalid_request", "error_description": "Use GET."})
		return
	}
	body, _ := json.Marshal(protectedResourceMetadata{
		Resource:               g.res.url,
		AuthorizationServers:   []string{g.server.issuer},
		ScopesSupported:        g.res.scopes,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           g.res.api.Name + " MCP",
	})
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "public, max-age=300")
	w.Write(body)
}
