package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/password"
)

func newUsersCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Create dashboard users"}
	var user manage.NewUser
	var orgSlug, role string
	var passwordStdin bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a user, optionally as a member of an organization",
		Long: `create makes a user who can log in to the dashboard. The password is read
from the KEYGATE_PASSWORD environment variable or, with --password-stdin, from
the first line of standard input, so it never shows in the process list.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readPassword(passwordStdin)
			if err != nil {
				return err
			}
			if role != keygate.RoleOwner && role != keygate.RoleMember {
				return fmt.Errorf("--role must be %q or %q", keygate.RoleOwner, keygate.RoleMember)
			}
			user.Password = pw
			cmd.SetContext(audit.AsCLI(cmd.Context(), osUser()))
			_, store, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer store.Close()
			var org *keygate.Organization
			if orgSlug != "" {
				if org, err = store.FindOrganizationBySlug(cmd.Context(), orgSlug); err != nil {
					return fmt.Errorf("organization %q: %s", orgSlug, userMessage(err))
				}
			}
			created, err := manage.CreateUser(cmd.Context(), store, user, time.Now())
			if err != nil {
				return err
			}
			if org != nil {
				m := &keygate.Membership{OrganizationID: org.ID, UserID: created.ID, Role: role, CreatedAt: created.CreatedAt}
				if err := store.SetMembership(cmd.Context(), m); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "created user %s (%s), %s of %s\n", created.Email, created.ID, role, org.Slug)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created user %s (%s)\n", created.Email, created.ID)
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&user.Email, "email", "", "email address used to log in (required)")
	f.StringVar(&user.Name, "name", "", "display name")
	f.BoolVar(&user.IsAdmin, "admin", false, "site administrator: manages every organization")
	f.StringVar(&orgSlug, "org", "", "organization to join")
	f.StringVar(&role, "role", keygate.RoleMember, "role in --org: owner or member")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	_ = create.MarkFlagRequired("email")
	cmd.AddCommand(create)
	return cmd
}

func readPassword(fromStdin bool) (string, error) {
	var pw string
	if fromStdin {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", errors.New("no password on standard input")
		}
		pw = strings.TrimRight(line, "\r\n")
	} else {
		pw = os.Getenv("KEYGATE_PASSWORD")
	}
	if pw == "" {
		return "", fmt.Errorf("a password of at least %d characters is required (KEYGATE_PASSWORD or --password-stdin)", password.MinLength)
	}
	if err := password.CheckPolicy(pw); err != nil {
		return "", fmt.Errorf("%s", keygate.ErrorMessage(err))
	}
	return pw, nil
}
