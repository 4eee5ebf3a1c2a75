package server

import (
	"net/http"

	"github.com/keygate/keygate/gateway"
)

func gatewayVerify(s *Server) http.Handler {
	return gateway.VerifyHandler(s.gateways, s.store)
}

// mountApplications adds the dashboard, management API and OAuth server.
func (s *Server) mountApplications(mux *http.ServeMux) {}
