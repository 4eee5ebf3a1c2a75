// Package server assembles a running keygate from a config: the store, the
// token cache and its change feed, the rate limiter, one gateway listener
// per API and the admin listener (dashboard, management API, OAuth, JWKS,
// metrics, health). cmd/keygate and the end-to-end tests both start keygate
// through it, so what the tests run is what users run.
package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/clientip"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/email"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/session"
	"github.com/keygate/keygate/tracing"
	"github.com/keygate/keygate/webhook"
)

// Options are what a caller may supply instead of having it built from the
// config.
type Options struct {
	Logger *slog.Logger
	// Store, when set, is used (and not closed) instead of opening the
	// configured one.
	Store keygate.Store
	// OAuthRootCAs, when set, are the only roots trusted when fetching
	// OAuth Client ID Metadata Documents, instead of the system's: for
	// tests and private PKI, where the documents' servers have
	// certificates no public root signed. The config has no key for it.
	OAuthRootCAs *x509.CertPool
	// Version is the service.version of exported spans ("" leaves it out).
	Version string
	// EmailRootCAs, when set, are the only roots trusted for the SMTP
	// server's certificate (tests, private PKI). The config has no key
	// for it.
	EmailRootCAs *x509.CertPool
	// Invitations, when set, is handed every invitation created through
	// the dashboard or the management API, with its link, to send to the
	// invitee, instead of the email outbox. nil: the outbox emails it when
	// email is on; otherwise the inviter passes the link on.
	Invitations manage.InvitationNotifier
}

// Server is a configured keygate, started by Start and stopped by Shutdown.
type Server struct {
	cfg       *config.Config
	logger    *slog.Logger
	store     keygate.Store
	ownsStore bool
	registry  *prometheus.Registry
	tokens    *gateway.Tokens
	usage     *gateway.Usage
	limiter   *limiter
	signer    *identity.Signer
	gateways  map[string]*gateway.Gateway
	apis      []*keygate.API

	webhooks *webhook.Dispatcher
	email    *email.Outbox
	audit    *audit.Log
	clientIP *clientip.Resolver
	logins   *session.LoginLimiter
	sessions *session.Manager
	oauth    *oauth.Server
	// oauthRoots verify Client ID Metadata Document servers; nil for the
	// system's roots.
	oauthRoots *x509.CertPool
	// tracing exports spans; nil when tracing is off.
	tracing    *tracing.Provider
	version    string
	emailRoots *x509.CertPool

	servers []*namedServer
	// inFlight counts the requests being served on every listener.
	inFlight  atomic.Int64
	follow    context.CancelFunc
	following sync.WaitGroup
	// invitations hears of new invitations (Options.Invitations).
	invitations manage.InvitationNotifier
}

type namedServer struct {
	name string // API name, or "admin"
	srv  *http.Server
	ln   net.Listener
}

// New builds keygate from cfg without listening yet.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Server, error) {
	s := &Server{cfg: cfg, logger: opts.Logger, store: opts.Store, oauthRoots: opts.OAuthRootCAs, emailRoots: opts.EmailRootCAs, invitations: opts.Invitations, version: opts.Version, registry: prometheus.NewRegistry(), gateways: map[string]*gateway.Gateway{}}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if err := s.build(ctx); err != nil {
		// Whatever build opened before it failed is closed here; the
		// caller gets nil and nothing to close.
		_ = s.closeResources(context.Background())
		return nil, err
	}
	return s, nil
}

// build opens and assembles what New returns, stopping at the first error.
func (s *Server) build(ctx context.Context) (err error) {
	cfg := s.cfg
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s.store == nil {
		if s.store, err = openStore(ctx, cfg, s.logger); err != nil {
			return fmt.Errorf("opening the database: %w", err)
		}
		s.ownsStore = true
	}
	// Every change made through the store from here on is audited.
	s.audit = &audit.Log{Store: s.store, Logger: s.logger}
	s.store = audit.Wrap(s.store, s.audit)
	if s.signer, err = loadSigner(ctx, s.store); err != nil {
		return err
	}
	split := cfg.RateLimiter.OnRedisFailure == config.OnFailureSplit
	for _, api := range cfg.APIs() {
		split = split || api.OnLimiterFailure == config.OnFailureSplit
	}
	if s.limiter, err = newLimiter(cfg.RateLimiter, s.store, split, s.registry, s.logger); err != nil {
		return err
	}
	s.tokens = gateway.NewTokens(s.store, gateway.TokensOptions{
		TTL: cfg.Cache.TTL, StaleIfError: offWhenZero(cfg.Cache.StaleIfError), StoreTimeout: cfg.Cache.StoreTimeout,
		MaxEntries: cfg.Cache.MaxEntries, NegativeTTL: offWhenZero(cfg.Cache.NegativeTTL),
		MaxNegativeEntries: cfg.Cache.NegativeMaxEntries, Logger: s.logger,
	})
	if err = gateway.RegisterTokenCacheMetrics(s.registry, s.tokens); err != nil {
		return err
	}
	s.usage = gateway.NewUsage(s.store, gateway.UsageOptions{
		LastUsedInterval: cfg.LastUsed.FlushInterval, CountsInterval: cfg.Usage.FlushInterval, Logger: s.logger,
	})
	if err = gateway.RegisterUsageMetrics(s.registry, s.usage); err != nil {
		return err
	}
	switch {
	case cfg.Tracing.Enabled() && tracing.Disabled():
		s.logger.Info("tracing is off: OTEL_SDK_DISABLED is true")
	case cfg.Tracing.Enabled():
		if s.tracing, err = tracing.New(ctx, cfg.Tracing, s.version, s.logger); err != nil {
			return err
		}
		// The endpoint carries no credentials: config check refuses them.
		s.logger.Info("exporting traces", "otlp_endpoint", cfg.Tracing.OTLPEndpoint, "sample_ratio", cfg.Tracing.SampleRatio)
	}
	if err = s.buildGateways(); err != nil {
		return err
	}
	s.newWebhooks()
	if err = s.newEmail(); err != nil {
		return err
	}
	s.audit.Shipper = s.shipAudit
	// One session manager and one login limiter serve the dashboard, the
	// management API and the OAuth login, so one login serves all three
	// and failures count on every form.
	s.sessions = &session.Manager{Sessions: s.store, Users: s.store, Secure: cfg.Admin.SecureCookies, StoreTimeout: cfg.Cache.StoreTimeout}
	s.logins = &session.LoginLimiter{Audit: s.audit, IPv6PrefixLength: s.cfg.IPv6PrefixLength}
	return s.newOAuth()
}

// offWhenZero turns the config's "0: off" into the cache's "negative:
// off", where zero takes the default.
func offWhenZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func loadSigner(ctx context.Context, store keygate.Store) (*identity.Signer, error) {
	fresh, err := identity.NewSigningKey()
	if err != nil {
		return nil, err
	}
	key, err := store.SigningKey(ctx, fresh)
	if err != nil {
		return nil, fmt.Errorf("loading the identity signing key: %w", err)
	}
	return identity.NewSigner(key)
}

func (s *Server) buildGateways() error {
	metrics, err := gateway.NewMetrics(s.registry)
	if err != nil {
		return err
	}
	resolver, err := clientip.New(prefixStrings(s.cfg))
	if err != nil {
		return err
	}
	if resolver, err = resolver.WithIPv6PrefixLength(s.cfg.IPv6PrefixLength); err != nil {
		return err
	}
	s.clientIP = resolver
	var traces *gateway.Tracing
	if s.tracing != nil {
		traces = &gateway.Tracing{Tracer: s.tracing.Tracer(), AcceptIncoming: s.cfg.Tracing.AcceptIncoming}
	}
	s.apis = s.cfg.APIs()
	for _, api := range s.apis {
		limiter, err := s.limiter.For(api.OnLimiterFailure)
		if err != nil {
			return fmt.Errorf("api %s: %w", api.Name, err)
		}
		g, err := gateway.New(gateway.Config{
			API: api, Tokens: s.tokens, Limiter: limiter, ClientIP: resolver, ForwardAuthPeers: s.cfg.ForwardAuthPeers,
			Signer: s.signer, Usage: s.usage, Metrics: metrics, Logger: s.logger, Tracing: traces,
		})
		if err != nil {
			return fmt.Errorf("api %s: %w", api.Name, err)
		}
		s.gateways[api.Name] = g
	}
	return nil
}

func prefixStrings(cfg *config.Config) []string {
	out := make([]string, len(cfg.TrustedProxies))
	for i, p := range cfg.TrustedProxies {
		out[i] = p.String()
	}
	return out
}

// clientAddr is the client's address as a string, trusted proxies honoured.
func (s *Server) clientAddr(r *http.Request) string { return s.clientIP.ClientIP(r).String() }

// Store returns the store keygate runs on.
func (s *Server) Store() keygate.Store { return s.store }

// APIs returns the configured APIs.
func (s *Server) APIs() []*keygate.API { return s.apis }

// TokenCache returns the token cache every API of the server shares.
func (s *Server) TokenCache() *gateway.Tokens { return s.tokens }

// Gateway returns the gateway of the named API, or nil.
func (s *Server) Gateway(api string) *gateway.Gateway { return s.gateways[api] }

// Start binds every listener and serves in the background. A port that is
// taken fails Start with the address named.
func (s *Server) Start() error {
	admin := s.adminHandler()
	if err := s.listen(adminListener, s.cfg.Admin.Listen, admin); err != nil {
		return err
	}
	for _, group := range s.listenerGroups() {
		if err := s.listen(group.name, group.addr, group.handler); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.follow = cancel
	s.following.Add(3)
	go func() {
		defer s.following.Done()
		m := &audit.Maintainer{Store: s.store, Log: s.audit, Retention: s.cfg.Audit.Retention}
		m.Run(ctx)
	}()
	// Before any listener serves: no cached token answers until the feed
	// knows where it begins.
	tokensFollowed := s.tokens.Follow(ctx, s.store)
	go func() {
		defer s.following.Done()
		<-tokensFollowed
	}()
	s.following.Add(1)
	go func() {
		defer s.following.Done()
		if err := s.email.Run(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("email outbox stopped", "error", err)
		}
	}()
	waitWebhooks := s.startWebhooks(ctx)
	go func() {
		defer s.following.Done()
		waitWebhooks()
	}()
	for _, ns := range s.servers {
		go func(ns *namedServer) {
			if err := ns.srv.Serve(ns.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.logger.Error("listener stopped", "listener", ns.name, "error", err)
			}
		}(ns)
	}
	return nil
}

func (s *Server) listen(name, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.closeListeners()
		return fmt.Errorf("%s listener: %w", name, err)
	}
	srv := s.httpServer(name, h)
	srv.ErrorLog = slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn)
	ln = newLimitListener(ln, s.cfg.Listeners.MaxConnections)
	s.servers = append(s.servers, &namedServer{name: name, srv: srv, ln: ln})
	s.logger.Info("listening", "listener", name, "addr", ln.Addr().String())
	return nil
}

func (s *Server) closeListeners() {
	for _, ns := range s.servers {
		_ = ns.ln.Close()
	}
	s.servers = nil
}

// Addr returns the bound address of the named listener ("admin" or an API
// name), useful when the config asked for port 0.
func (s *Server) Addr(name string) string {
	for _, ns := range s.servers {
		for _, n := range strings.Split(ns.name, ",") {
			if n == name {
				return ns.ln.Addr().String()
			}
		}
	}
	return ""
}

// finalWriteTimeout is how long the last usage and last-used writes may
// take at shutdown when in-flight requests spent the whole grace.
const finalWriteTimeout = 5 * time.Second

// Shutdown stops accepting requests and claiming webhook deliveries and
// emails, lets in-flight requests and attempts finish (until ctx ends),
// writes pending usage and closes what New opened. Requests still
// in flight when ctx ends (a stream, an upstream that stopped answering)
// have their connections closed, which cancels them and their upstream
// calls; the pending writes then get finalWriteTimeout of their own, so a
// Shutdown returns within ctx's deadline and that, whatever the upstreams
// and the database do.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, ns := range s.servers {
		wg.Add(1)
		go func(ns *namedServer) {
			defer wg.Done()
			if err := ns.srv.Shutdown(ctx); err != nil {
				s.logger.Warn("shutdown grace ended with requests in flight; closing their connections", "listener", ns.name)
				_ = ns.srv.Close()
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s listener: requests still in flight when the shutdown grace ended were cut off: %w", ns.name, err))
				mu.Unlock()
			}
		}(ns)
	}
	wg.Go(func() { s.stopSenders(ctx) })
	wg.Wait()
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), finalWriteTimeout)
		defer cancel()
		// Closing a connection cancels its request; its handler counts
		// it on the way out, before the last usage is written.
		s.waitForHandlers(ctx)
	}
	errs = append(errs, s.closeResources(ctx))
	return errors.Join(errs...)
}

// stopSenders stops the webhook and email workers claiming and lets their
// attempts in flight finish until ctx, the shutdown's grace, ends; those
// cut short then are sent again once their claim's lease ends, so nothing
// is lost and a silent database does not hold the shutdown past the grace.
func (s *Server) stopSenders(ctx context.Context) {
	var wg sync.WaitGroup
	if s.webhooks != nil {
		wg.Go(func() {
			if s.webhooks.Shutdown(ctx) != nil {
				s.logger.Warn("shutdown grace ended with webhook deliveries in flight; they are sent again when their claim ends")
			}
		})
	}
	wg.Go(func() {
		if s.email.Shutdown(ctx) != nil {
			s.logger.Warn("shutdown grace ended with emails in flight; they are sent again when their claim ends")
		}
	})
	wg.Wait()
}

// waitForHandlers returns when no request is being served, or when ctx
// ends.
func (s *Server) waitForHandlers(ctx context.Context) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.inFlight.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Server) closeResources(ctx context.Context) error {
	var errs []error
	if s.follow != nil {
		s.follow()
		s.following.Wait()
	}
	if s.usage != nil {
		errs = append(errs, s.usage.Close(ctx))
	}
	if s.limiter != nil {
		errs = append(errs, s.limiter.Close())
	}
	// Spans of the last requests are exported before keygate exits.
	errs = append(errs, s.tracing.Shutdown(ctx))
	if s.ownsStore && s.store != nil {
		errs = append(errs, s.closeStore(ctx))
	}
	return errors.Join(errs...)
}

// closeStore closes the store keygate opened, waiting for it until ctx
// ends. Every write worth keeping has been made or given up on by then;
// what is left is saying goodbye to the database, which pgx gives 15 s a
// connection whose query was cut short, so on a database that stopped
// answering it would hold the exit well past the grace. Those connections
// are left to close in the background, or with the process.
func (s *Server) closeStore(ctx context.Context) error {
	closed := make(chan error, 1)
	go func() { closed <- s.store.Close() }()
	select {
	case err := <-closed:
		return err
	case <-ctx.Done():
		s.logger.Warn("the shutdown's time ended while closing the database connections; leaving them to close as keygate exits")
		return nil
	}
}

// Webhooks returns the webhook dispatcher; Start runs it.
func (s *Server) Webhooks() *webhook.Dispatcher { return s.webhooks }

// IdentityVerifier verifies the identity headers this keygate signs, for
// upstreams running in the same process (the demo APIs).
func (s *Server) IdentityVerifier() *identity.Verifier {
	return identity.NewVerifier(s.signer.JWKS())
}
