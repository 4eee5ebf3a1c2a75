package server

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/email"
)

// newEmail builds the email outbox (off without email.smtp_url) and its
// metric: keygate_emails_total{kind, outcome} counts attempts that sent,
// will retry, or gave up ("failed"), so a failing mail server shows.
func (s *Server) newEmail() error {
	cfg := s.cfg.Email
	attempts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keygate_emails_total",
		Help: "Attempts to send an email, by kind and outcome (sent, retry, failed).",
	}, []string{"kind", "outcome"})
	if err := s.registry.Register(attempts); err != nil {
		return err
	}
	opts := email.Options{
		From: cfg.From, PublicURL: s.cfg.Admin.PublicURL, LinkKey: []byte(cfg.LinkKey), Logger: s.logger,
		OnAttempt: func(kind, outcome string) { attempts.WithLabelValues(kind, outcome).Inc() },
	}
	if cfg.SMTPURL != "" {
		server, err := email.ParseServer(cfg.SMTPURL)
		if err != nil {
			return fmt.Errorf("email.smtp_url: %w", err)
		}
		server.RootCAs = s.emailRoots
		opts.Server = server
		s.logger.Info("email: sending through", "smtp", server.String(), "from", cfg.From)
	}
	var err error
	if s.email, err = email.New(s.store, opts); err != nil {
		return err
	}
	if s.invitations == nil && s.email.Enabled() {
		s.invitations = s.email // emails each invitation's link to its invitee
	}
	return nil
}

// shipAudit tells the webhooks and the email outbox of each audit entry.
func (s *Server) shipAudit(ctx context.Context, e *keygate.AuditEntry) {
	s.webhooks.EmitAudit(ctx, e)
	s.email.NotifyAudit(ctx, e)
}

// Email returns the email outbox (Enabled false without email.smtp_url);
// Start runs it. Other parts queue their own emails with its Send.
func (s *Server) Email() *email.Outbox { return s.email }
