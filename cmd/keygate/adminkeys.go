package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/manage"
)

func newAdminKeysCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "admin-keys", Short: "Create, list and revoke keys for the management and verify APIs"}
	var name string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an admin key and print it once",
		Args:  cobra.NoArgs,
		RunE: g.withStore(func(cmd *cobra.Command, _ []string, _ *config.Config, store keygate.Store) error {
			secret, err := createAdminKey(cmd.Context(), store, name)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Copy this admin key now: it will not be shown again.")
			fmt.Fprintln(cmd.OutOrStdout(), secret)
			return nil
		}),
	}
	create.Flags().StringVar(&name, "name", "", "what the key is for (required)")
	_ = create.MarkFlagRequired("name")
	cmd.AddCommand(create, newAdminKeysListCommand(g), newAdminKeysRevokeCommand(g))
	return cmd
}

// The CLI acts as the site's administrator: whoever can open the store can
// manage its keys anyway.
var cliAdmin = manage.Caller{User: &keygate.User{ID: "cli", IsAdmin: true}}

func newAdminKeysListCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the admin keys in force (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: g.withStore(func(cmd *cobra.Command, _ []string, _ *config.Config, store keygate.Store) error {
			keys, err := manage.ListAdminKeys(cmd.Context(), store, cliAdmin)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tHINT\tCREATED")
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Hint, k.CreatedAt.Format("2006-01-02"))
			}
			return tw.Flush()
		}),
	}
}

func newAdminKeysRevokeCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ADMIN_KEY_ID",
		Short: "Revoke an admin key: the next request made with it is refused",
		Args:  cobra.ExactArgs(1),
		RunE: g.withStore(func(cmd *cobra.Command, args []string, _ *config.Config, store keygate.Store) error {
			if err := manage.RevokeAdminKey(cmd.Context(), store, cliAdmin, args[0], time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked admin key %s\n", args[0])
			return nil
		}),
	}
}

func createAdminKey(ctx context.Context, store keygate.Store, name string) (string, error) {
	_, secret, err := manage.CreateAdminKey(ctx, store, name, time.Now())
	return secret, err
}
