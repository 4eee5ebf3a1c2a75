package server

import (
	"net/http"

	"github.com/keygate/keygate/api"
	"github.com/keygate/keygate/dashboard"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/session"
)

func gatewayVerify(s *Server) http.Handler {
	return gateway.VerifyHandler(s.gateways, s.store)
}

// mountApplications adds the management API, the dashboard and the OAuth
// server. One session manager serves all three, so one login does.
func (s *Server) mountApplications(mux *http.ServeMux) {
	sessions := &session.Manager{Sessions: s.store, Users: s.store, Secure: s.cfg.Admin.SecureCookies}
	// Changes made here reach this instance's token cache at once; other
	// instances hear of them through the store's change feed.
	notify := s.tokens.Apply
	// One login limiter counts failures on every login form.
	s.logins = &session.LoginLimiter{}
	clientIP := func(r *http.Request) string { return s.clientIP.ClientIP(r).String() }
	mux.Handle("/api/v1/", api.New(api.Deps{Store: s.store, APIs: s.apis, Sessions: sessions, Logger: s.logger, Notify: notify}))
	mux.Handle("/", dashboard.New(dashboard.Deps{
		Store: s.store, APIs: s.apis, Sessions: sessions, Logger: s.logger, Notify: notify,
		Logins: s.logins, ClientIP: clientIP,
	}))
}
