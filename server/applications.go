package server

import (
	"net/http"

	"github.com/keygate/keygate/api"
	"github.com/keygate/keygate/dashboard"
	"github.com/keygate/keygate/gateway"
)

func gatewayVerify(s *Server) http.Handler {
	return gateway.VerifyHandler(s.gateways, s.store, s.cfg.Cache.StoreTimeout)
}

// mountApplications adds the management API, its admin keys limited by
// adminKeys, the dashboard and the OAuth server.
func (s *Server) mountApplications(mux *http.ServeMux, adminKeys *adminKeyFailures) {
	// Changes made here reach this instance's token cache at once; other
	// instances hear of them through the store's change feed.
	notify := s.tokens.Apply
	// Tokens created and deleted here send their webhook events through the
	// dispatcher Start runs (nil when the store keeps no webhooks).
	mux.Handle("/api/v1/", adminKeys.guard(api.New(api.Deps{
		Store: s.store, APIs: s.apis, Sessions: s.sessions, Logger: s.logger, Notify: notify,
		Webhooks: s.webhooks, PendingUsage: s.usage, PublicURL: s.cfg.Admin.PublicURL, Invitations: s.invitations,
		EmailSending: s.email.Enabled(), StoreTimeout: s.cfg.Cache.StoreTimeout,
	})))
	s.mountOAuth(mux)
	mux.Handle("/", dashboard.New(dashboard.Deps{
		Store: s.store, APIs: s.apis, Sessions: s.sessions, Logger: s.logger, Notify: notify,
		Logins: s.logins, ClientIP: s.clientAddr, IPv6PrefixLength: s.cfg.IPv6PrefixLength, Webhooks: s.webhooks, PendingUsage: s.usage,
		PublicURL: s.cfg.Admin.PublicURL, Limiter: s.limiter.Limiter(), MemoryLimiter: s.limiter.Memory(), EmailSending: s.email.Enabled(), Invitations: s.invitations,
	}))
}
