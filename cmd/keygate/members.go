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

func newMembersCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List an organization's members and invite people",
		Long: `members lists an organization's members and manages its invitations. An
invitation is a link, valid for 7 days, that lets the person with the invited
email join once they open it and accept (creating their login there if they
have none). To add an existing user directly, as the site operator, use
"keygate users create --org" for a new login or the management API with an
admin key.`,
	}
	var orgSlug, email, role string
	org := func(cmd *cobra.Command, store keygate.Store) (*keygate.Organization, error) {
		o, err := store.FindOrganizationBySlug(cmd.Context(), orgSlug)
		if err != nil {
			return nil, fmt.Errorf("organization %q: %s", orgSlug, userMessage(err))
		}
		return o, nil
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List an organization's members",
		Args:  cobra.NoArgs,
		RunE: g.withStore(func(cmd *cobra.Command, _ []string, _ *config.Config, store keygate.Store) error {
			o, err := org(cmd, store)
			if err != nil {
				return err
			}
			members, err := manage.ListMembers(cmd.Context(), store, o)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "EMAIL\tNAME\tROLE\tSINCE\tID")
			for _, m := range members {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.User.Email, m.User.Name, m.Role, m.Since.Format("2006-01-02"), m.User.ID)
			}
			return tw.Flush()
		}),
	}

	invite := &cobra.Command{
		Use:   "invite",
		Short: "Invite an email to join an organization and print the invitation's link",
		Long: `invite creates an invitation and prints its link, once: keygate keeps only
a hash of it. Send the link to the invitee only; with email on (email.smtp_url)
keygate also emails it to them, through the outbox a running keygate serve
sends. Inviting an email again replaces its pending invitation. The link
starts with admin.public_url.`,
		Args: cobra.NoArgs,
		RunE: g.withStore(func(cmd *cobra.Command, _ []string, cfg *config.Config, store keygate.Store) error {
			o, err := org(cmd, store)
			if err != nil {
				return err
			}
			// With email on, the outbox queues the invitation's email; a
			// running keygate serve on this database sends it.
			logger := g.logger(cfg)
			outbox, err := cliOutbox(cfg, store, logger)
			if err != nil {
				return err
			}
			invitations := manage.Invitations{Store: store, Logger: logger}
			if outbox.Enabled() {
				invitations.Notifier = outbox
			}
			created, err := invitations.Invite(cmd.Context(), manage.Caller{}, o,
				manage.NewInvitation{Email: email, Role: role}, cfg.Admin.PublicURL, time.Now())
			if err != nil {
				return fmt.Errorf("%s", userMessage(err))
			}
			inv := created.Invitation
			how := "send them this link, shown only now"
			if outbox.Enabled() {
				how = "it is emailed to them; the link, shown only now"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "invited %s to %s as %s (%s), until %s; %s:\n",
				inv.Email, o.Slug, inv.Role, inv.ID, inv.ExpiresAt.Format(time.RFC3339), how)
			fmt.Fprintln(cmd.OutOrStdout(), created.Link)
			return nil
		}),
	}
	invite.Flags().StringVar(&email, "email", "", "email address to invite (required)")
	invite.Flags().StringVar(&role, "role", keygate.RoleMember, "role once accepted: owner or member")
	_ = invite.MarkFlagRequired("email")

	invitations := &cobra.Command{
		Use:   "invitations",
		Short: "List an organization's pending invitations",
		Args:  cobra.NoArgs,
		RunE: g.withStore(func(cmd *cobra.Command, _ []string, _ *config.Config, store keygate.Store) error {
			o, err := org(cmd, store)
			if err != nil {
				return err
			}
			list, err := manage.ListInvitations(cmd.Context(), store, o, time.Now())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tEMAIL\tROLE\tINVITED BY\tCREATED\tEXPIRES")
			for _, inv := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", inv.ID, inv.Email, inv.Role, inv.InvitedBy,
					inv.CreatedAt.Format(time.RFC3339), inv.ExpiresAt.Format(time.RFC3339))
			}
			return tw.Flush()
		}),
	}

	revoke := &cobra.Command{
		Use:   "revoke-invitation <invitation-id>",
		Short: "Revoke a pending invitation: its link stops working",
		Args:  cobra.ExactArgs(1),
		RunE: g.withStore(func(cmd *cobra.Command, args []string, _ *config.Config, store keygate.Store) error {
			o, err := org(cmd, store)
			if err != nil {
				return err
			}
			if err := manage.RevokeInvitation(cmd.Context(), store, o, args[0], time.Now()); err != nil {
				return fmt.Errorf("%s", userMessage(err))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked invitation %s\n", args[0])
			return nil
		}),
	}
	for _, c := range []*cobra.Command{list, invite, invitations, revoke} {
		c.Flags().StringVar(&orgSlug, "org", "", "organization slug (required)")
		_ = c.MarkFlagRequired("org")
	}
	cmd.AddCommand(list, invite, invitations, revoke)
	return cmd
}
