package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/email"
)

// cliOutbox is the email outbox a command queues into (off without
// email.smtp_url); the server sends what it queues.
func cliOutbox(cfg *config.Config, store keygate.Store, logger *slog.Logger) (*email.Outbox, error) {
	opts := email.Options{From: cfg.Email.From, PublicURL: cfg.Admin.PublicURL, LinkKey: []byte(cfg.Email.LinkKey), Logger: logger}
	if cfg.Email.SMTPURL != "" {
		server, err := email.ParseServer(cfg.Email.SMTPURL)
		if err != nil {
			return nil, fmt.Errorf("email.smtp_url: %w", err)
		}
		opts.Server = server
	}
	return email.New(store, opts)
}

func newEmailCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "email", Short: "See keygate's email outbox and test the mail server"}
	cmd.AddCommand(newEmailOutboxCommand(g), newEmailTestCommand(g))
	return cmd
}

func newEmailOutboxCommand(g *globals) *cobra.Command {
	var filter keygate.EmailFilter
	var orgSlug string
	cmd := &cobra.Command{
		Use:   "outbox",
		Short: "List queued, sent and failed emails, newest first, with each one's last error",
		Args:  cobra.NoArgs,
		RunE: g.withStore(func(cmd *cobra.Command, _ []string, _ *config.Config, store keygate.Store) error {
			switch filter.State {
			case "", keygate.EmailPending, keygate.EmailSent, keygate.EmailFailed:
			default:
				return fmt.Errorf("--state must be pending, sent or failed, got %q", filter.State)
			}
			if orgSlug != "" {
				org, err := store.FindOrganizationBySlug(cmd.Context(), orgSlug)
				if err != nil {
					return err
				}
				filter.OrganizationID = org.ID
			}
			emails, err := store.ListEmails(cmd.Context(), filter)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCREATED\tSTATE\tKIND\tTO\tATTEMPTS\tNEXT ATTEMPT\tLAST ERROR")
			for _, e := range emails {
				next := "-"
				if e.State == keygate.EmailPending && e.NextAttemptAt != nil {
					next = e.NextAttemptAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.ID, e.CreatedAt.Format(time.RFC3339), e.State, e.Kind,
					printable(strings.Join(e.To, ",")), e.Attempts, next, printable(oneLine(e.LastError)))
			}
			return tw.Flush()
		}),
	}
	f := cmd.Flags()
	f.StringVar(&filter.State, "state", "", "only pending, sent or failed emails")
	f.StringVar(&orgSlug, "org", "", "only this organization's emails")
	f.IntVar(&filter.Limit, "limit", 100, "at most this many")
	return cmd
}

func newEmailTestCommand(g *globals) *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "test --to ADDRESS",
		Short: "Send one email through email.smtp_url now and say what the mail server answered",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if cfg.Email.SMTPURL == "" {
				return fmt.Errorf("email.smtp_url is not set: keygate sends no email")
			}
			server, err := email.ParseServer(cfg.Email.SMTPURL)
			if err != nil {
				return fmt.Errorf("email.smtp_url: %w", err)
			}
			if err := email.SendTest(cmd.Context(), server, cfg.Email.From, to); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s accepted a test email to %s\n", server, to)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the address to send it to (required)")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// printable returns s with every control character and text-reordering
// mark (keygate.HasHiddenCharacters) written as a Go escape: \x1b, \t,
// \u202e. The CLI prints what others wrote (an email typed on the login
// page, a user agent, a mail server's reply) through it, so none of it
// reaches the operator's terminal as a control sequence, which could
// retitle the window, rewrite the lines above or set the clipboard, nor
// breaks a table's columns.
func printable(s string) string {
	if !keygate.HasHiddenCharacters(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if keygate.HasHiddenCharacters(string(r)) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}
