package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/manage"
)

func newAuditCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the audit log (it cannot be changed)"}
	cmd.AddCommand(newAuditListCommand(g))
	return cmd
}

func newAuditListCommand(g *globals) *cobra.Command {
	var orgSlug string
	var q manage.AuditQuery
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit entries, newest first",
		Args:  cobra.NoArgs,
		RunE: g.withStore(func(cmd *cobra.Command, _ []string, _ *config.Config, store keygate.Store) error {
			// The CLI holds the database: it reads as a site administrator.
			c := manage.Caller{AdminKey: &keygate.AdminKey{ID: "cli", Name: "cli"}}
			var a *manage.Access
			if orgSlug != "" {
				var err error
				if a, err = manage.OrganizationAccess(cmd.Context(), store, c, orgSlug); err != nil {
					return err
				}
			}
			page, err := manage.ListAudit(cmd.Context(), store, c, a, q)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tACTION\tACTOR\tADDRESS\tORG\tTARGET\tDETAILS")
			for _, e := range page.Entries {
				actor := e.Actor.Type
				if e.Actor.Name != "" {
					actor += ":" + e.Actor.Name
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.At.Format(time.RFC3339), e.Action, printable(actor),
					printable(e.Actor.Address), printable(e.OrganizationID), printable(e.TargetID), printable(string(e.Details)))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if page.NextCursor != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "more: --cursor %s\n", page.NextCursor)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&orgSlug, "org", "", "only this organization's entries")
	f.StringVar(&q.Action, "action", "", "only this action, e.g. token.created")
	f.StringVar(&q.Actor, "actor", "", "only this actor: user id or email, admin key id or name")
	f.StringVar(&q.From, "from", "", "from this day (2026-01-31) or RFC 3339 time")
	f.StringVar(&q.To, "to", "", "until this day (inclusive) or RFC 3339 time")
	f.StringVar(&q.Cursor, "cursor", "", "the cursor a previous page printed")
	f.IntVar(&q.Limit, "limit", 50, "entries per page, at most 200")
	return cmd
}
