package server

import (
	"context"

	"github.com/keygate/keygate/webhook"
)

// newWebhooks builds the webhook dispatcher. It exists from New on, so the
// dashboard and the management API, mounted in Start, send their token
// events through the same dispatcher that startWebhooks runs.
func (s *Server) newWebhooks() {
	s.webhooks = webhook.New(s.store, webhook.Options{
		Logger: s.logger, AllowPrivateAddresses: s.cfg.Webhooks.AllowPrivateAddresses,
		MaxEndpointsPerOrganization: s.cfg.Webhooks.MaxEndpointsPerOrganization,
	})
}

// startWebhooks runs the webhook dispatcher until ctx ends. It returns a
// function that waits for it to stop.
func (s *Server) startWebhooks(ctx context.Context) func() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.webhooks.Run(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("webhook dispatcher stopped", "error", err)
		}
	}()
	return func() { <-done }
}
