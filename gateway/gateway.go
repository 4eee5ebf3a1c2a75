// Package gateway is keygate's request path: it finds the route, reads and
// verifies the token, applies the route's scope, plan and entitlement rules
// and the rate limits, and forwards to the upstream with keygate's identity
// headers. The same decision serves the reverse proxy, forward-auth
// (nginx/Traefik/Caddy) and the verify API.
//
// Every refusal is answered by the API's preset, so the wire behaviour of a
// preset lives in its data, not here. The gateway never logs, forwards or
// echoes a token: logs carry the token id only.
package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/clientip"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/ratelimit"
)

// DefaultMaxBodyBytes bounds request bodies forwarded upstream.
const DefaultMaxBodyBytes = 10 << 20

// Config is what one API's gateway needs.
type Config struct {
	API      *keygate.API
	Tokens   *Tokens
	Limiter  ratelimit.Limiter // nil: no rate limits
	ClientIP *clientip.Resolver
	Signer   *identity.Signer
	Usage    *Usage   // nil: usage not recorded
	Metrics  *Metrics // nil: no metrics
	Logger   *slog.Logger
	// ForwardAuthPeers may ask forward-auth, besides ClientIP's trusted
	// proxies; nil: loopback only, empty: nobody else.
	ForwardAuthPeers []netip.Prefix
	// MaxBodyBytes bounds forwarded request bodies; 0: DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Tracing records a span per request; nil: no tracing, at no cost.
	Tracing *Tracing
	Now     func() time.Time
}

// Gateway serves one API.
type Gateway struct {
	api      *keygate.API
	preset   *keygate.Preset
	prefixes []string
	tokens   *Tokens
	// tokenAPI is the API as the token cache's entries name it.
	tokenAPI APIRef
	limiter  ratelimit.Limiter
	clientIP *clientip.Resolver
	// forwardAuthPeers may ask forward-auth besides trusted proxies.
	forwardAuthPeers *forwardAuthPeers
	usage            *Usage
	metrics          *apiMetrics // nil: none
	tracing          *tracing    // nil: off
	logger           *slog.Logger
	now              func() time.Time
	maxBody          int64
	routes           *routeTable
	failures         *ratelimit.SpentBudgets
	forward          *Forwarder
	identities       *identities
	mounts           *http.ServeMux
	mounted          bool
}

// New builds the gateway of cfg.API.
func New(cfg Config) (*Gateway, error) {
	upstream, err := url.Parse(cfg.API.Upstream)
	if err != nil {
		return nil, err
	}
	routes, err := newRouteTable(cfg.API.Routes)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		api: cfg.API, preset: cfg.API.Preset, prefixes: cfg.API.TokenPrefixes(),
		tokens: cfg.Tokens, limiter: cfg.Limiter, clientIP: cfg.ClientIP,
		usage: cfg.Usage, logger: cfg.Logger, now: cfg.Now,
		maxBody: cfg.MaxBodyBytes, routes: routes, failures: ratelimit.NewSpentBudgets(), mounts: http.NewServeMux(),
	}
	if g.tokens != nil {
		g.tokenAPI = g.tokens.APIRef(cfg.API.Name)
	}
	if g.logger == nil {
		g.logger = slog.Default()
	}
	g.logger = g.logger.With("api", cfg.API.Name)
	if cfg.Metrics != nil {
		g.metrics = cfg.Metrics.forAPI(cfg.API.Name)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.maxBody <= 0 {
		g.maxBody = DefaultMaxBodyBytes
	}
	if g.clientIP == nil {
		g.clientIP, _ = clientip.New(nil)
	}
	g.forwardAuthPeers = &forwardAuthPeers{prefixes: cfg.ForwardAuthPeers}
	if cfg.ForwardAuthPeers == nil {
		g.forwardAuthPeers.prefixes = defaultForwardAuthPeers
	}
	g.tracing = newTracing(cfg.Tracing, cfg.API)
	g.forward = NewForwarder(cfg.API, upstream, cfg.Signer, g.fail, g.logger)
	g.identities = newIdentities(cfg.API.Name, cfg.Signer, identityBudgetOf(cfg.Tokens))
	if g.tracing != nil {
		g.forward.tracer = g.tracing.tracer
	}
	return g, nil
}

// API returns the API this gateway serves.
func (g *Gateway) API() *keygate.API { return g.api }

// Mount serves h for pattern on this API's listener ahead of the routes,
// e.g. the MCP endpoint and its protected-resource metadata. A path that a
// lenient upstream reads as pattern ("/MCP", "/mcp;x" for "/mcp") is the
// preset's 404, not the route it matches (see routeTable), on the proxy
// and on forward-auth, which also refuses pattern's own paths: they are
// the mounted endpoint's, not the API's. Mount is called before the
// gateway serves.
func (g *Gateway) Mount(pattern string, h http.Handler) {
	g.mounts.Handle(pattern, h)
	g.routes.mount(pattern)
	g.mounted = true
}

// Request is what a decision is made on: the method and URL asked for, the
// headers that may carry the token, and the client's address.
type Request struct {
	Method   string
	URL      *url.URL
	Header   http.Header
	ClientIP netip.Addr
	// forwardsCleanQuery: keygate itself forwards the request, with the
	// query pairs Go cannot parse dropped (cleanQuery); otherwise the
	// upstream may read the query as sent.
	forwardsCleanQuery bool
}

// Decision is the outcome of Authorize: the matched route, who the request
// acts for (nil on public routes), the client's address and the rate limit
// that applied.
type Decision struct {
	Route    *keygate.Route
	Token    *keygate.Token
	Identity *keygate.Identity
	ClientIP netip.Addr
	// RateLimit is the result of the rate limit that applied, when
	// HasRateLimit. A value: deciding a limited request allocates nothing
	// for it.
	RateLimit    ratelimit.Result
	HasRateLimit bool
	// signed is Identity with its header values, when it came from the
	// gateway's identities (a token's); nil: signed when sent.
	signed *signedIdentity
}

// limitedBy records res, the result of the rate limit that applied.
func (d *Decision) limitedBy(res ratelimit.Result) {
	d.RateLimit, d.HasRateLimit = res, true
}

// ServeHTTP is the reverse proxy: decide, then forward or refuse.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_keygate/auth" {
		g.ForwardAuth(w, r)
		return
	}
	if g.mounted {
		if h, pattern := g.mounts.Handler(r); pattern != "" {
			g.serveMount(w, r, h)
			return
		}
	}
	start := g.now()
	r, span := g.startSpan(r, r.Method, modeProxy, g.peerTrusted(r, false))
	req := g.requestOf(r)
	req.forwardsCleanQuery = true
	d, err := g.Authorize(r.Context(), req)
	g.respond(w, r, d, err, g.forward, start, span)
}

// serveMount serves a mounted endpoint (MCP) under the routes' path rule:
// an unclean path is the preset's 404, so what reaches the upstream is
// what was checked.
func (g *Gateway) serveMount(w http.ResponseWriter, r *http.Request, h http.Handler) {
	if !cleanURL(r.URL) {
		g.fail(w, r, errNotFound)
		return
	}
	h.ServeHTTP(w, r)
}

// respond finishes a request decided as d (refused when err is set): the
// rate limit headers, the body limit, then f forwards it or the preset
// answers the refusal; metrics and usage are counted after.
func (g *Gateway) respond(w http.ResponseWriter, r *http.Request, d Decision, err error, f *Forwarder, start time.Time, span trace.Span) {
	if d.HasRateLimit {
		d.RateLimit.SetHeaders(w.Header())
	}
	if err == nil && r.ContentLength > g.maxBody {
		err = errTooLarge
	}
	var written int // the status answered; 0: none
	var cut bool
	switch {
	case keygate.ErrorCode(err) == keygate.ECANCELED:
		// The client is gone: nobody reads an answer.
	case err != nil:
		written = g.refuse(w, r, err)
	default:
		if r.Body != http.NoBody { // the server's body of a request without one
			r.Body = http.MaxBytesReader(w, r.Body, g.maxBody)
		}
		written, cut = f.forward(w, r, d.Identity, d.signed, d.ClientIP)
		if written == 0 && r.Context().Err() != nil {
			err = canceled(r.Context()) // left before the upstream answered
		}
	}
	status := statusOr(written, err)
	g.observe(d, status, err, start)
	g.endSpan(span, d, status, err, r.Method, span != nil && f == g.forward)
	if cut {
		// Counted as the status the client got; now its response ends
		// short, so it is not taken for a whole one.
		panic(http.ErrAbortHandler)
	}
}

// Authorize runs the whole chain on req: route, token, limits, rules.
func (g *Gateway) Authorize(ctx context.Context, req Request) (Decision, error) {
	d := Decision{ClientIP: req.ClientIP}
	d.Route = g.routes.match(req.Method, req.URL)
	if d.Route == nil {
		return d, errNotFound
	}
	if overridesMethod(req) {
		// The route was chosen for req.Method; the upstream would serve
		// the other.
		return d, errMethodOverride
	}
	if d.Route.Access == keygate.AccessPublic {
		return d, g.limit(ctx, &d, g.publicLimit(d.Route), req)
	}
	tok, org, err := g.authenticate(ctx, &d, req)
	if err != nil {
		// Guessing tokens spends the address's failed_auth budget and its
		// public limit (failures.go).
		return d, g.countFailure(ctx, &d, req, err, true)
	}
	d.Token = tok
	d.signed = g.identities.of(tok, org)
	d.Identity = d.signed.id
	if err := g.limit(ctx, &d, g.tokenLimit(d.Route), req); err != nil {
		return d, err
	}
	return d, checkRules(d.Route, tok, org, req)
}

// AuthenticateToken verifies the API's token header alone, without route
// rules: for endpoints such as MCP that accept API tokens too. An expired
// token is reported as invalid when the preset answers both alike
// (cannmenus), so the MCP endpoint tells a caller no more than the REST
// routes do.
//
// A token presented and refused counts against the address's failed_auth
// budget as on the routes, and the refusal's rate limit headers are set on
// h; no token at all does not count, since every MCP client asks without
// one first to discover OAuth.
func (g *Gateway) AuthenticateToken(h http.Header, r *http.Request) (*keygate.Identity, error) {
	req := g.requestOf(r)
	var d Decision
	tok, org, err := g.authenticate(r.Context(), &d, req)
	if err != nil {
		err = g.countFailure(r.Context(), &d, req, err, false)
	}
	if err != nil && d.HasRateLimit {
		d.RateLimit.SetHeaders(h)
	}
	if keygate.ErrorCode(err) == keygate.ETOKENEXPIRED && g.preset.SameAnswer(keygate.ETOKENEXPIRED, keygate.ETOKENINVALID) {
		err = errTokenInvalid
	}
	if err != nil {
		return nil, err
	}
	return g.identityOf(tok, org), nil
}

// authenticate finds the token of req. An address that has spent its
// failed_auth budget gets errBudgetSpent for any well-formed token other
// than one this instance has cached and would accept: the store is not
// asked. Refusals the cache can make (a token known to be unknown,
// deleted, expired) take the same path, so their cost does not tell a
// token that existed once from one that never did.
func (g *Gateway) authenticate(ctx context.Context, d *Decision, req Request) (*keygate.Token, *keygate.Organization, error) {
	secret, err := tokenFrom(req.Header, g.preset, g.prefixes)
	if err != nil {
		return nil, nil, err
	}
	digest := keygate.DigestToken(secret)
	// The cache checks a cached token from its entry (CachedFor), one
	// read from the store by the same rules (accepts).
	tok, org, cached, err := g.tokens.CachedFor(g.tokenAPI, digest, g.now())
	if (!cached || err != nil) && g.budgetSpent(d, req) {
		return nil, nil, errBudgetSpent
	}
	if !cached {
		if tok, org, err = g.tokens.Lookup(ctx, digest); err == nil {
			err = accepts(g.tokenAPI, tok, digest, g.now())
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return tok, org, nil
}

// checkRules applies the route's scope, plan and entitlement rules.
func checkRules(route *keygate.Route, tok *keygate.Token, org *keygate.Organization, req Request) error {
	// A route without scopes leaves the token unread: it may be a miss
	// to memory, which the cache's hit spares (CachedFor).
	if len(route.Scopes) > 0 && !tok.HasScopes(route.Scopes) {
		return errScope
	}
	if len(route.Plans) > 0 && !slices.Contains(route.Plans, org.Plan) {
		return errPlan
	}
	if len(route.Entitlements) == 0 {
		return nil // the query need not be parsed
	}
	// The query checked must be the query the upstream reads. One that
	// Go's parser reads only in part (a ";" separator, a bad escape, more
	// parameters than it reads) may hold a value another parser reads,
	// e.g. states=Oregon;x=1 split at the ";", or the first thousand of
	// ten thousand parameters (PHP's max_input_vars). The proxy forwards
	// the pairs Go read and drops the others (cleanQuery), so it checks
	// those; where the query goes on as sent (forward-auth, the verify
	// API) such a query is refused, as is one too long to read at all.
	if err, decided := checkEntitlementsInQuery(route, org.Entitlements, req.URL.RawQuery); decided {
		return err
	}
	query, err := url.ParseQuery(req.URL.RawQuery)
	if err != nil && req.forwardsCleanQuery {
		query, err = url.ParseQuery(cleanQuery(req.URL.RawQuery))
	}
	if err != nil {
		return errMalformedQuery
	}
	return checkEntitlements(route, org.Entitlements, query)
}

var errMalformedQuery = keygate.Errorf(keygate.EINVALID, "Malformed query string.")

// checkEntitlements refuses the first requested value outside the
// organization's entitlements. Parameters may repeat and hold
// comma-separated lists: states=California,Oregon&states=Michigan.
func checkEntitlements(route *keygate.Route, ent keygate.Entitlements, query url.Values) error {
	for _, kind := range []string{keygate.EntitlementStates, keygate.EntitlementBrands, keygate.EntitlementDispensaries} {
		param, ok := route.Entitlements[kind]
		if !ok {
			continue
		}
		for _, raw := range entitlementValues(query, param) {
			for _, v := range strings.Split(raw, ",") {
				v = strings.TrimSpace(v)
				if v != "" && !ent.Allows(kind, v) {
					return unentitled(kind, v)
				}
			}
		}
	}
	return nil
}

// checkEntitlementsInQuery is checkEntitlements read straight from the
// raw query, without building url.Values, for the usual query: one Go
// parses whole, naming each entitlement parameter in one spelling. It
// decides nothing (decided is false) for any other, which the caller
// checks through url.ParseQuery: then the same values are checked in the
// same order, so the answer is the same either way.
func checkEntitlementsInQuery(route *keygate.Route, ent keygate.Entitlements, raw string) (err error, decided bool) {
	if strings.Count(raw, "&") >= maxQueryParams {
		return nil, false
	}
	for rest := raw; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if strings.Contains(pair, ";") {
			return nil, false
		}
		k, v, _ := strings.Cut(pair, "=")
		if _, err := url.QueryUnescape(k); err != nil {
			return nil, false
		}
		if _, err := url.QueryUnescape(v); err != nil {
			return nil, false
		}
	}
	for _, kind := range [...]string{keygate.EntitlementStates, keygate.EntitlementBrands, keygate.EntitlementDispensaries} {
		param, ok := route.Entitlements[kind]
		if !ok {
			continue
		}
		// One spelling only: several are checked in sorted order of
		// their names (entitlementValues), which needs url.Values.
		name := ""
		for rest := raw; rest != ""; {
			var pair string
			pair, rest, _ = strings.Cut(rest, "&")
			k, _, _ := strings.Cut(pair, "=")
			key, _ := url.QueryUnescape(k)
			if base, _, _ := strings.Cut(key, "["); pair == "" || !strings.EqualFold(base, param) {
				continue
			}
			if name != "" && key != name {
				return nil, false
			}
			name = key
		}
		if name == "" {
			continue
		}
		for rest := raw; rest != ""; {
			var pair string
			pair, rest, _ = strings.Cut(rest, "&")
			k, v, _ := strings.Cut(pair, "=")
			if key, _ := url.QueryUnescape(k); pair == "" || key != name {
				continue
			}
			value, _ := url.QueryUnescape(v)
			for item := range strings.SplitSeq(value, ",") {
				if item = strings.TrimSpace(item); item != "" && !ent.Allows(kind, item) {
					return unentitled(kind, item), true
				}
			}
		}
	}
	return nil, true
}

// maxQueryParams is how many parameters url.ParseQuery reads at most
// (net/url's default); a longer query reads as none.
const maxQueryParams = 10000

func unentitled(kind, v string) error {
	return &keygate.Error{
		Code:    keygate.EENTITLEMENT,
		Message: "Your organization does not have access to " + keygate.EntitlementNoun(kind) + " " + v + ".",
		Kind:    kind, Value: v,
	}
}

// entitlementValues returns what the query asks for with param under
// every name an upstream framework may read as param: any case (ASP.NET
// reads States= as states=) and PHP's array forms (states[]=, states[0]=),
// so no spelling reaches the upstream unchecked. Names are taken in sorted
// order, so a refusal names the same value every time.
func entitlementValues(query url.Values, param string) []string {
	var names []string
	for name := range query {
		base, _, _ := strings.Cut(name, "[")
		if strings.EqualFold(base, param) {
			names = append(names, name)
		}
	}
	if len(names) == 1 {
		return query[names[0]]
	}
	slices.Sort(names)
	var values []string
	for _, name := range names {
		values = append(values, query[name]...)
	}
	return values
}

func (g *Gateway) identityOf(tok *keygate.Token, org *keygate.Organization) *keygate.Identity {
	return &keygate.Identity{
		OrganizationID: org.ID, OrganizationSlug: org.Slug, Plan: org.Plan,
		Entitlements: org.Entitlements, TokenID: tok.ID, Scopes: tok.Scopes, API: g.api.Name,
	}
}

func (g *Gateway) publicLimit(route *keygate.Route) *keygate.RateLimit {
	if route != nil && route.RateLimit != nil {
		return route.RateLimit
	}
	return g.api.PublicRateLimit
}

func (g *Gateway) tokenLimit(route *keygate.Route) *keygate.RateLimit {
	if route.RateLimit != nil {
		return route.RateLimit
	}
	return g.api.TokenRateLimit
}

// limit applies rule (nil: none) and records the result on d. A route with
// its own rule counts in its own bucket; plan overrides follow d's identity.
func (g *Gateway) limit(ctx context.Context, d *Decision, rule *keygate.RateLimit, req Request) error {
	if rule == nil || g.limiter == nil {
		return nil
	}
	n := rule.Limit
	if d.Identity != nil {
		n = rule.LimitFor(d.Identity.Plan)
	}
	res, err := g.limiter.Allow(ctx, g.limitKey(rule, d, req), n, rule.Period)
	if err != nil && ctx.Err() != nil {
		// The client went away during the call: no outage to report.
		return canceled(ctx)
	}
	if err != nil {
		g.logger.Error("rate limiter unavailable", "error", err)
		return keygate.Errorf(keygate.EUNAVAILABLE, "Rate limiter unavailable.")
	}
	d.limitedBy(res)
	if !res.Allowed {
		return errRateLimited
	}
	return nil
}

// limitKey names the bucket a request counts in. An OAuth client on the
// MCP endpoint has no API token: "per token" then means per client and
// user, the OAuth counterpart of one token.
func (g *Gateway) limitKey(rule *keygate.RateLimit, d *Decision, req Request) string {
	// A token's own keys are made once with its identity (identities.go).
	if s := d.signed; s != nil && s.id == d.Identity && rule != g.api.FailedAuthRateLimit && (d.Route == nil || d.Route.RateLimit != rule) {
		switch rule.Key {
		case keygate.LimitByToken:
			return s.tokenKey
		case keygate.LimitByOrganization:
			return s.orgKey
		}
	}
	var b strings.Builder
	b.WriteString(g.api.Name)
	if rule == g.api.FailedAuthRateLimit {
		b.WriteString(":failed_auth")
	} else if d.Route != nil && d.Route.RateLimit == rule {
		b.WriteString(":route:")
		b.WriteString(g.routes.patternOf(d.Route))
	}
	id := d.Identity
	switch {
	case rule.Key == keygate.LimitByToken && id != nil && id.TokenID != "":
		b.WriteString(":token:")
		b.WriteString(id.TokenID)
	case rule.Key == keygate.LimitByToken && id != nil && id.ClientID != "":
		b.WriteString(":oauth:")
		b.WriteString(id.ClientID)
		b.WriteString(":")
		b.WriteString(id.UserID)
	case rule.Key == keygate.LimitByOrganization && id != nil:
		b.WriteString(":org:")
		b.WriteString(id.OrganizationID)
	default:
		b.WriteString(":ip:")
		b.WriteString(g.clientIP.Bucket(req.ClientIP))
	}
	return b.String()
}

func (g *Gateway) requestOf(r *http.Request) Request {
	return Request{Method: r.Method, URL: r.URL, Header: r.Header, ClientIP: g.clientIP.ClientIP(r)}
}

// fail answers err in the preset's shape.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, err error) {
	g.refuse(w, r, err)
}

// refuse is fail, returning the status it wrote.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, err error) int {
	status, body := g.preset.Render(err)
	h := w.Header()
	h["Content-Type"] = jsonType
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h["Cache-Control"] = noStore
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return status
}

// Header values of keygate's own answers, shared by every response header
// that sets them: never written in place (and an append copies).
var (
	noStore  = []string{"no-store"}
	jsonType = []string{"application/json"}
)

// observe records metrics, usage and a debug log line for one request.
func (g *Gateway) observe(d Decision, status int, err error, start time.Time) {
	code := keygate.ErrorCode(err)
	if g.metrics != nil {
		g.metrics.observe(code, g.now().Sub(start))
	}
	if g.usage != nil && d.Identity != nil {
		g.usage.Record(d.Identity.OrganizationID, d.Identity.TokenID, status, start)
	}
	if code == keygate.EINTERNAL || code == keygate.EUNAVAILABLE {
		g.logger.Warn("request refused", "code", code, "status", status, "token_id", tokenID(d))
	} else if g.logger.Enabled(context.Background(), slog.LevelDebug) {
		g.logger.Debug("request", "code", code, "status", status, "token_id", tokenID(d), "duration", g.now().Sub(start))
	}
}

func tokenID(d Decision) string {
	if d.Token != nil {
		return d.Token.ID
	}
	return ""
}

// statusOr is written, the status answered, or the one err stands for
// when the request ended without an answer (written is 0).
func statusOr(written int, err error) int {
	switch {
	case written != 0:
		return written
	case keygate.ErrorCode(err) == keygate.ECANCELED:
		return keygate.StatusClientClosedRequest
	}
	return http.StatusOK
}
