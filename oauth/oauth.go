// Package oauth makes keygate the OAuth 2.1 authorization server for the
// MCP endpoints it guards, following the MCP authorization specification
// (revision 2026-07-28, and usable by clients written to 2025-06-18 and
// 2025-11-25):
//
//   - discovery: RFC 8414 metadata and the OpenID discovery document on the
//     admin listener, RFC 9728 protected resource metadata on each API;
//   - clients: pre-registered (config), Client ID Metadata Documents
//     (HTTPS URL client ids, fetched with limits), RFC 7591 registration;
//   - the authorization code flow with PKCE S256 only, keygate's own login
//     and consent pages, RFC 9207 `iss` on every redirect, RFC 8707
//     `resource` binding the token to one MCP endpoint;
//   - refresh tokens that rotate, where reusing an old one revokes the whole
//     grant, and RFC 7009 revocation;
//   - ProtectMCP, which accepts only access tokens issued for its endpoint
//     and forwards with keygate's identity, never the client's token.
//
// Access and refresh tokens are opaque: "kgo_at_…" and "kgo_rt_…" in the
// same shape as API tokens (random base62 and a CRC32 checksum), stored only
// as SHA-256 hashes, so revoking a grant takes effect on the next request.
// Their prefix is no API's, so the gateway refuses them on REST routes as it
// refuses any unknown token, and only the token endpoint issues them: there
// is no grant that turns an API token into an OAuth token.
//
// The protocol is implemented here on the standard library rather than on
// an OAuth server library. The candidate, github.com/ory/fosite, brings in
// ory/x with gRPC, OpenTelemetry exporters and protobuf (about 250 packages,
// three minutes of cold compile on a 2-core CI runner) and still lacks what
// MCP needs most: RFC 8707 resources, RFC 9207 `iss`, Client ID Metadata
// Documents and dynamic registration. What remains is small and every rule
// has a test: PKCE S256 comparison, exact redirect matching, single-use
// codes and refresh-token rotation, the last two made atomic by the store.
//
// This package never logs, returns in an error, or puts in a URL a code,
// token or client secret; logs carry client, grant, user and organization
// ids only.
package oauth

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/session"
)

// Store is what the authorization server needs from keygate's store: OAuth
// records, organizations (entitlements for the consent page and the
// identity) and users (login, memberships).
type Store interface {
	keygate.OAuthStore
	keygate.OrganizationService
	keygate.UserService
}

// Default lifetimes.
const (
	DefaultAccessTokenTTL  = time.Hour
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
	DefaultCodeTTL         = time.Minute
	// unusedClientTTL is how long a dynamically registered client that
	// never got a grant is kept: registration is open to anyone, so
	// abandoned registrations must not pile up.
	unusedClientTTL = 24 * time.Hour
	purgeInterval   = time.Hour
)

// Config configures a Server.
type Config struct {
	Store    Store
	Sessions *session.Manager
	// Issuer is the admin listener's public URL, e.g. "https://keygate.example.com".
	// It is the issuer identifier in metadata and in every redirect's `iss`.
	Issuer string
	Logger *slog.Logger
	// Clients are pre-registered clients from config. Their Source is set
	// to keygate.OAuthClientConfig.
	Clients []*keygate.OAuthClient
	// AllowPrivateCIMD lets Client ID Metadata Documents be fetched from
	// loopback and private addresses (tests, private networks).
	AllowPrivateCIMD bool
	// CIMDRootCAs, when set, are the roots trusted when fetching Client ID
	// Metadata Documents instead of the system's.
	CIMDRootCAs *x509.CertPool
	// DisableRegistration turns off RFC 7591 dynamic registration.
	DisableRegistration bool
	// LoginURL, when set, is where a user without a session is sent, with
	// ?next=<the authorization request>, instead of the built-in login form.
	LoginURL string
	// Logins limits failed logins on the built-in form. Share the
	// dashboard's, or this form becomes a way around its limits; nil: a
	// limiter of this server's own with the session package's defaults.
	Logins *session.LoginLimiter
	// ClientIP returns the address a request comes from (honouring trusted
	// proxies), for the login limits; nil: the connection's address.
	ClientIP func(*http.Request) string
	// StoreTimeout bounds each store read made to check an access token on
	// an MCP endpoint (cache.store_timeout); 0: keygate.DefaultStoreTimeout.
	StoreTimeout time.Duration
	// Lifetimes; zero means the default.
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	CodeTTL         time.Duration
	Now             func() time.Time
}

// Server is the authorization server and the guard of MCP endpoints.
type Server struct {
	store    Store
	sessions *session.Manager
	issuer   string
	log      *slog.Logger
	clients  map[string]*keygate.OAuthClient
	cimd     *metadataFetcher

	allowRegistration bool
	loginURL          string
	logins            *session.LoginLimiter
	clientIP          func(*http.Request) string
	accessTTL         time.Duration
	refreshTTL        time.Duration
	codeTTL           time.Duration
	storeTimeout      time.Duration
	now               func() time.Time

	mu        sync.RWMutex
	resources map[string]*resource // canonical resource URL → endpoint

	lastPurge atomic.Int64 // unix seconds
}

// New returns a Server. It fails on an invalid issuer or client.
func New(cfg Config) (*Server, error) {
	issuer, err := checkIssuer(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	if cfg.Store == nil || cfg.Sessions == nil {
		return nil, fmt.Errorf("oauth: a store and a session manager are required")
	}
	s := &Server{
		store:             cfg.Store,
		sessions:          cfg.Sessions,
		issuer:            issuer,
		log:               cfg.Logger,
		clients:           map[string]*keygate.OAuthClient{},
		allowRegistration: !cfg.DisableRegistration,
		loginURL:          cfg.LoginURL,
		logins:            cfg.Logins,
		clientIP:          cfg.ClientIP,
		accessTTL:         orDefault(cfg.AccessTokenTTL, DefaultAccessTokenTTL),
		refreshTTL:        orDefault(cfg.RefreshTokenTTL, DefaultRefreshTokenTTL),
		codeTTL:           orDefault(cfg.CodeTTL, DefaultCodeTTL),
		storeTimeout:      orDefault(cfg.StoreTimeout, keygate.DefaultStoreTimeout),
		now:               cfg.Now,
		resources:         map[string]*resource{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logins == nil {
		s.logins = &session.LoginLimiter{}
	}
	if s.clientIP == nil {
		s.clientIP = remoteIP
	}
	for _, c := range cfg.Clients {
		if err := checkConfigClient(c); err != nil {
			return nil, err
		}
		if _, dup := s.clients[c.ID]; dup {
			return nil, fmt.Errorf("oauth: client %q is configured twice", c.ID)
		}
		cp := *c
		cp.Source = keygate.OAuthClientConfig
		s.clients[c.ID] = &cp
	}
	s.cimd = newMetadataFetcher(cfg.AllowPrivateCIMD, cfg.CIMDRootCAs, s.now)
	return s, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// checkIssuer returns the issuer without a trailing slash. RFC 8414 wants
// an https URL without query or fragment; plain http is accepted for
// loopback and development setups, as the demo runs on 127.0.0.1.
func checkIssuer(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("oauth: issuer must be an absolute http(s) URL without query or fragment, got %q", raw)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

// Issuer returns the issuer identifier.
func (s *Server) Issuer() string { return s.issuer }

// issuerPath is the issuer's path, "" when it has none.
func (s *Server) issuerPath() string {
	u, _ := url.Parse(s.issuer)
	return strings.TrimSuffix(u.Path, "/")
}

// Endpoint paths on the admin listener.
const (
	PathAuthorize = "/oauth/authorize"
	PathToken     = "/oauth/token"
	PathRevoke    = "/oauth/revoke"
	PathRegister  = "/oauth/register"
	PathLogin     = "/oauth/login"
	PathLogout    = "/oauth/logout"

	pathServerMetadata = "/.well-known/oauth-authorization-server"
	pathOpenIDMetadata = "/.well-known/openid-configuration"
)

// Handler serves the authorization server on the admin listener: metadata,
// the authorize endpoint with its login and consent pages, token,
// revocation and registration.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	metadata := s.cors(http.HandlerFunc(s.serveMetadata))
	mux.Handle(pathServerMetadata, metadata)
	mux.Handle(pathOpenIDMetadata, metadata)
	if p := s.issuerPath(); p != "" {
		// RFC 8414 §3: an issuer with a path has its metadata at the
		// well-known prefix followed by that path.
		mux.Handle(pathServerMetadata+p, metadata)
		mux.Handle(pathOpenIDMetadata+p, metadata)
		mux.Handle(p+pathOpenIDMetadata, metadata)
	}
	mux.HandleFunc("GET "+PathAuthorize, s.serveAuthorize)
	mux.HandleFunc("POST "+PathAuthorize, s.serveDecision)
	mux.HandleFunc("POST "+PathLogin, s.serveLogin)
	mux.HandleFunc("POST "+PathLogout, s.serveLogout)
	mux.Handle(PathToken, s.cors(http.HandlerFunc(s.serveToken)))
	mux.Handle(PathRevoke, s.cors(http.HandlerFunc(s.serveRevoke)))
	mux.Handle(PathRegister, s.cors(http.HandlerFunc(s.serveRegister)))
	return mux
}

// cors lets browser-based MCP clients read metadata and call the token,
// revocation and registration endpoints. None of them uses cookies, so
// any origin may call them.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
			h.Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// maybePurge deletes expired codes and tokens and abandoned registrations,
// at most once per purgeInterval, off the request path.
func (s *Server) maybePurge() {
	now := s.now()
	last := s.lastPurge.Load()
	if now.Unix()-last < int64(purgeInterval/time.Second) || !s.lastPurge.CompareAndSwap(last, now.Unix()) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.store.PurgeOAuth(ctx, now, now.Add(-unusedClientTTL)); err != nil {
			s.log.Warn("oauth: purging expired codes and tokens failed", "err", err)
		}
	}()
}
