package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/server"
)

func newTokensCheckCommand(g *globals) *cobra.Command {
	var offline bool
	cmd := &cobra.Command{
		Use:   "check [TOKEN | -]",
		Short: "Say whether a string is a keygate token and, from the database, which one and its state",
		Long: `check reads a suspected token (from standard input when no argument or "-" is
given: prefer that, so the secret stays out of shell history and process
lists), says whether it is well formed for one of the config's APIs (prefix,
length, checksum), and then looks its hash up in the database to name the
token id, organization, name and state (active, expired, revoked). It never
prints the secret, only its hint. --offline skips the database.

Exit status: 0 when the string is a known token (or, with --offline, well
formed); 1 otherwise.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			secret, err := readSecret(cmd.InOrStdin(), args)
			if err != nil {
				return err
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			api, env, prefix := matchTokenFormat(cfg, secret)
			out := cmd.OutOrStdout()
			if api == nil {
				return fmt.Errorf("not a well-formed token of this config's APIs (%s): wrong prefix, length or checksum", prefixList(cfg))
			}
			fmt.Fprintf(out, "well-formed %s token for API %s (%s)\n", env, api.Name, keygate.TokenHint(prefix, secret))
			if offline {
				return nil
			}
			return describeStoredToken(cmd, cfg, secret)
		},
	}
	cmd.Flags().BoolVar(&offline, "offline", false, "only check the format; do not open the database")
	return cmd
}

// readSecret takes the token from the argument, or from the first line of
// in when there is none or it is "-".
func readSecret(in io.Reader, args []string) (string, error) {
	if len(args) == 1 && args[0] != "-" {
		return strings.TrimSpace(args[0]), nil
	}
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("reading the token from standard input: %w", err)
	}
	secret := strings.TrimSpace(line)
	if secret == "" {
		return "", fmt.Errorf("no token given: pass it on standard input (echo \"$TOKEN\" | keygate tokens check) or as an argument")
	}
	return secret, nil
}

// matchTokenFormat returns the API, environment and prefix whose token
// format secret has, or a nil API.
func matchTokenFormat(cfg *config.Config, secret string) (*keygate.API, string, string) {
	for _, api := range cfg.APIs() {
		for _, env := range []string{keygate.EnvironmentLive, keygate.EnvironmentTest} {
			prefix := keygate.TokenPrefix(api.Tokens.BasePrefix, env)
			if keygate.WellFormedToken(secret, prefix) {
				return api, env, prefix
			}
		}
	}
	return nil, "", ""
}

func prefixList(cfg *config.Config) string {
	var prefixes []string
	for _, api := range cfg.APIs() {
		prefixes = append(prefixes, api.TokenPrefixes()...)
	}
	if len(prefixes) == 0 {
		return "none configured"
	}
	return strings.Join(prefixes, ", ")
}

func describeStoredToken(cmd *cobra.Command, cfg *config.Config, secret string) error {
	store, err := server.OpenStore(cmd.Context(), cfg)
	if err != nil {
		return fmt.Errorf("looking the token up: %w", err)
	}
	defer store.Close()
	tok, err := store.FindTokenByHash(cmd.Context(), keygate.HashToken(secret))
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return fmt.Errorf("no token with this secret in the database: forged, from another deployment, or its row was removed")
	} else if err != nil {
		return fmt.Errorf("looking the token up: %w", err)
	}
	org := tok.OrganizationID
	if o, err := store.FindOrganizationByID(cmd.Context(), tok.OrganizationID); err == nil {
		org = o.Slug
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "token %s %q of organization %s, created %s by %s, last used %s, expires %s\n",
		tok.ID, tok.Name, org, tok.CreatedAt.Format("2006-01-02"), tok.CreatedBy, formatLastUsed(tok.LastUsedAt), formatExpiry(tok.ExpiresAt))
	fmt.Fprintf(out, "state: %s\n", tokenState(tok, time.Now()))
	if tok.Active(time.Now()) {
		fmt.Fprintf(out, "revoke it with: keygate tokens revoke %s\n", tok.ID)
	}
	return nil
}
