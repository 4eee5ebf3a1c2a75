package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/manage"
)

func newAdminKeysCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "admin-keys", Short: "Create keys for the management and verify APIs"}
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
	cmd.AddCommand(create)
	return cmd
}

func createAdminKey(ctx context.Context, store keygate.Store, name string) (string, error) {
	_, secret, err := manage.CreateAdminKey(ctx, store, name, time.Now())
	return secret, err
}
