package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/webhook"
)

func newTokensCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "tokens", Short: "Create, list and revoke API tokens"}
	cmd.AddCommand(newTokensCreateCommand(g), newTokensListCommand(g), newTokensRotateCommand(g), newTokensRevokeCommand(g), newTokensCheckCommand(g))
	return cmd
}

func newTokensCreateCommand(g *globals) *cobra.Command {
	var orgSlug, apiName, expires string
	req := keygate.TokenRequest{CreatedBy: "cli"}
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a token and print it once",
		Args:  cobra.NoArgs,
		RunE: g.withStore(func(cmd *cobra.Command, _ []string, cfg *config.Config, store keygate.Store) error {
			api := cfg.API(apiName)
			if api == nil {
				return fmt.Errorf("unknown API %q: the config defines %s", apiName, apiNames(cfg.APIs()))
			}
			org, err := store.FindOrganizationBySlug(cmd.Context(), orgSlug)
			if err != nil {
				return fmt.Errorf("organization %q: %s", orgSlug, userMessage(err))
			}
			req.Expiry = keygate.ExpiryChoice(expires)
			if cmd.Flags().Changed("scope") && req.Scopes == nil {
				req.Scopes = []string{} // --scope "": asked for none, which is refused
			}
			tok, secret, err := tokenChanges(store, g.logger(cfg)).Create(cmd.Context(), api, org, req, time.Now())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "created token %s (%s) for %s on %s, expires %s\n", tok.ID, tok.Name, org.Slug, api.Name, formatExpiry(tok.ExpiresAt))
			fmt.Fprintf(out, "scopes: %s\n", formatScopes(tok.Scopes))
			fmt.Fprintln(out, "Copy it now: it will not be shown again.")
			fmt.Fprintln(out, secret)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&orgSlug, "org", "", "organization slug (required)")
	f.StringVar(&apiName, "api", "", "API name from the config (required)")
	f.StringVar(&req.Name, "name", "", "token name, 1 to 100 characters (required)")
	f.StringVar(&expires, "expires", string(keygate.DefaultExpiry), "7d, 30d, 90d, 1y or never")
	f.StringSliceVar(&req.Scopes, "scope", nil, "narrow the token to these scopes (repeat or comma-separate); default: every scope of the API")
	f.StringVar(&req.Environment, "env", keygate.EnvironmentLive, "live or test")
	for _, name := range []string{"org", "api", "name"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func newTokensListCommand(g *globals) *cobra.Command {
	var orgSlug, apiName string
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: g.withStore(func(cmd *cobra.Command, _ []string, _ *config.Config, store keygate.Store) error {
			filter := keygate.TokenFilter{API: apiName, IncludeRevoked: all}
			if orgSlug != "" {
				org, err := store.FindOrganizationBySlug(cmd.Context(), orgSlug)
				if err != nil {
					return fmt.Errorf("organization %q: %s", orgSlug, userMessage(err))
				}
				filter.OrganizationID = org.ID
			}
			tokens, err := store.ListTokens(cmd.Context(), filter)
			if err != nil {
				return err
			}
			now := time.Now()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tAPI\tHINT\tCREATED\tLAST USED\tEXPIRES\tSTATE")
			for _, t := range tokens {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.API, t.Hint,
					t.CreatedAt.Format("2006-01-02"), formatLastUsed(t.LastUsedAt), formatExpiry(t.ExpiresAt), tokenState(t, now))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().StringVar(&orgSlug, "org", "", "only this organization's tokens")
	cmd.Flags().StringVar(&apiName, "api", "", "only this API's tokens")
	cmd.Flags().BoolVar(&all, "all", false, "include revoked tokens")
	return cmd
}

// tokenWithOrganization finds a token by id and its organization; either
// missing is the same "not found".
func tokenWithOrganization(ctx context.Context, store keygate.Store, id string) (*keygate.Token, *keygate.Organization, error) {
	notFound := keygate.Errorf(keygate.ENOTFOUND, "Token %q not found.", id)
	tok, err := store.FindTokenByID(ctx, id)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return nil, nil, notFound
	} else if err != nil {
		return nil, nil, err
	}
	org, err := store.FindOrganizationByID(ctx, tok.OrganizationID)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return nil, nil, notFound
	} else if err != nil {
		return nil, nil, err
	}
	return tok, org, nil
}

func newTokensRevokeCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke TOKEN_ID",
		Short: "Revoke (delete) a token: the next request with it fails",
		Args:  cobra.ExactArgs(1),
		RunE: g.withStore(func(cmd *cobra.Command, args []string, cfg *config.Config, store keygate.Store) error {
			tok, org, err := tokenWithOrganization(cmd.Context(), store, args[0])
			if err != nil {
				return err
			}
			if _, err := tokenChanges(store, g.logger(cfg)).Delete(cmd.Context(), org, tok.ID, time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked token %s\n", tok.ID)
			return nil
		}),
	}
}

func newTokensRotateCommand(g *globals) *cobra.Command {
	var grace string
	cmd := &cobra.Command{
		Use:   "rotate TOKEN_ID",
		Short: "Give a token a new secret, print it once, and retire the old one after --grace",
		Args:  cobra.ExactArgs(1),
		RunE: g.withStore(func(cmd *cobra.Command, args []string, cfg *config.Config, store keygate.Store) error {
			tok, org, err := tokenWithOrganization(cmd.Context(), store, args[0])
			if err != nil {
				return err
			}
			tok, secret, err := tokenChanges(store, g.logger(cfg)).Rotate(cmd.Context(), cfg.APIs(), org, tok.ID, keygate.RotationGrace(grace), time.Now())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "rotated token %s (%s); the old secret works until %s\n",
				tok.ID, tok.Name, tok.PreviousHashExpiresAt.Format(time.RFC3339))
			fmt.Fprintln(out, "Copy it now: it will not be shown again.")
			fmt.Fprintln(out, secret)
			return nil
		}),
	}
	cmd.Flags().StringVar(&grace, "grace", string(keygate.Grace24Hours), "how long the old secret keeps working: 0, 1h, 24h or 7d")
	return cmd
}

// tokenChanges creates and revokes tokens as the dashboard and the API do,
// with their webhook events. The CLI runs no dispatcher: its events are
// stored for delivery, and a keygate server on the same database sends
// them.
func tokenChanges(store keygate.Store, logger *slog.Logger) manage.Tokens {
	return manage.Tokens{Store: store, Logger: logger, Events: webhook.New(store, webhook.Options{Logger: logger})}
}

func apiNames(apis []*keygate.API) string {
	if len(apis) == 0 {
		return "no APIs"
	}
	s := ""
	for i, a := range apis {
		if i > 0 {
			s += ", "
		}
		s += a.Name
	}
	return s
}

func formatExpiry(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Format("2006-01-02")
}

func formatScopes(scopes []string) string {
	if len(scopes) == 0 {
		return "none (the API's routes need none)"
	}
	return strings.Join(scopes, ", ")
}

func formatLastUsed(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Format("2006-01-02 15:04")
}

func tokenState(t *keygate.Token, now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return "revoked"
	case t.Expired(now):
		return "expired"
	}
	return "active"
}
