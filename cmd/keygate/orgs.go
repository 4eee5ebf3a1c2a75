package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/manage"
)

func newOrgsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "orgs", Short: "Create and list organizations"}
	var org keygate.Organization
	var states, brands, dispensaries []string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an organization",
		Args:  cobra.NoArgs,
		RunE: g.withStore(func(cmd *cobra.Command, _ []string, _ *config.Config, store keygate.Store) error {
			org.Entitlements = keygate.Entitlements{States: states, Brands: brands, Dispensaries: dispensaries}
			if err := manage.CreateOrganization(cmd.Context(), store, &org, time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created organization %s (%s) on plan %s\n", org.Slug, org.ID, org.Plan)
			return nil
		}),
	}
	f := create.Flags()
	f.StringVar(&org.Slug, "slug", "", "short unique name used in URLs and commands (required)")
	f.StringVar(&org.Name, "name", "", "display name (default: the slug)")
	f.StringVar(&org.Plan, "plan", "free", "subscription plan")
	f.StringSliceVar(&states, "states", nil, "states the organization may read (default: all)")
	f.StringSliceVar(&brands, "brands", nil, "brands the organization may read (default: all)")
	f.StringSliceVar(&dispensaries, "dispensaries", nil, "dispensaries the organization may read (default: all)")
	_ = create.MarkFlagRequired("slug")

	list := &cobra.Command{
		Use:   "list",
		Short: "List organizations",
		Args:  cobra.NoArgs,
		RunE: g.withStore(func(cmd *cobra.Command, _ []string, _ *config.Config, store keygate.Store) error {
			orgs, err := store.ListOrganizations(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SLUG\tNAME\tPLAN\tSTATES\tID")
			for _, o := range orgs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Slug, o.Name, o.Plan, orAll(o.Entitlements.States), o.ID)
			}
			return tw.Flush()
		}),
	}
	cmd.AddCommand(create, list)
	return cmd
}

func orAll(values []string) string {
	if len(values) == 0 {
		return "all"
	}
	return strings.Join(values, ",")
}
