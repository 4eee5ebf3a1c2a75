package server

import (
	"context"

	"github.com/keygate/keygate/webhook"
)

// startWebhooks runs the webhook dispatcher when the store keeps webhooks,
// until ctx ends. It returns a function that waits for it to stop.
func (s *Server) startWebhooks(ctx context.Context) func() {
	store, ok := s.store.(webhook.Store)
	if !ok {
		s.logger.Warn("this store does not keep webhooks; organization webhooks are off")
		return func() {}
	}
	s.webhooks = webhook.New(store, webhook.Options{Logger: s.logger, AllowPrivateAddresses: s.cfg.Webhooks.AllowPrivateAddresses})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.webhooks.Run(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("webhook dispatcher stopped", "error", err)
		}
	}()
	return func() { <-done }
}
