package email

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

// Invitation emails carry a secret, the invitation's link, and the outbox
// keeps its emails in the database, where keygate keeps secrets only as
// hashes. So an invitation email is stored as its recipient, subject and
// the invitation's id, and its bodies are rendered when it is sent: the
// link's secret is derived from the invitation's id with the link key
// (email.link_key, which is in the config file, not the database), by
// whichever instance sends it, at the first attempt or the seventh, after
// any restart. The database holds the id and the secret's hash; neither
// gives the link without the key.

// KindInvitation is the kind of invitation emails. It is always sent
// when email is on: it is how the invitee gets the link.
const KindInvitation = "invitation"

var _ manage.InvitationNotifier = (*Outbox)(nil)

// InvitationSecret returns the secret of the link of the new invitation
// id, derived with the link key, so that the email can be rendered when
// it is sent; "" (a random secret) with email off or no public URL to
// put in links.
func (o *Outbox) InvitationSecret(invitationID string) string {
	if !o.Enabled() || o.publicURL == "" || len(o.linkKey) == 0 {
		return ""
	}
	return keygate.InvitationSecret(o.linkKey, invitationID)
}

// InvitationCreated queues the invitation's email to the invitee. The
// link in n is not stored: the sender rebuilds it from the invitation's
// id. It does nothing with email off.
func (o *Outbox) InvitationCreated(ctx context.Context, n manage.InvitationNotice) error {
	if !o.Enabled() {
		return nil
	}
	inv := n.Invitation
	if o.InvitationSecret(inv.ID) == "" {
		return fmt.Errorf("email: an invitation email needs admin.public_url and email.link_key for its link; not sent")
	}
	if keygate.HashToken(o.InvitationSecret(inv.ID)) != inv.Hash {
		return fmt.Errorf("email: invitation %s's link was not derived from email.link_key; not sent", inv.ID)
	}
	if _, err := mail.ParseAddress(inv.Email); err != nil {
		return keygate.Errorf(keygate.EINVALID, "%q is not an email address.", inv.Email)
	}
	d := o.invitationData(ctx, inv, n.Organization, "")
	subject, _, _, err := render("invitation", d)
	if err != nil {
		return fmt.Errorf("email: rendering invitation: %w", err)
	}
	return o.enqueue(ctx, nil, []*keygate.Email{{
		OrganizationID: inv.OrganizationID, Kind: KindInvitation, To: []string{inv.Email},
		Subject: subject, InvitationID: inv.ID,
	}})
}

// unsendable is why an email can never be sent: it fails at once.
type unsendable struct{ reason string }

func (u *unsendable) Error() string { return u.reason }

func isUnsendable(err error) bool {
	var u *unsendable
	return errors.As(err, &u)
}

// renderInvitation fills in e's subject and bodies, link included, for
// this attempt only: they are never stored. An invitation no longer
// pending is not sent; one whose link the key cannot rebuild (the key
// changed since) fails with what to do.
func (o *Outbox) renderInvitation(ctx context.Context, e *keygate.Email, now time.Time) error {
	// Only pending invitations can be sent: listing those alone keeps each
	// send's read to the organization's pending invitations, not every
	// invitation it ever had.
	list, err := o.store.ListInvitations(ctx, keygate.InvitationFilter{OrganizationID: e.OrganizationID, PendingAt: now})
	if err != nil {
		return err
	}
	var inv *keygate.Invitation
	for _, i := range list {
		if i.ID == e.InvitationID {
			inv = i
		}
	}
	if inv == nil {
		return &unsendable{"the invitation was accepted, revoked or has expired (or its organization deleted); not sent"}
	}
	secret := keygate.InvitationSecret(o.linkKey, inv.ID)
	if len(o.linkKey) == 0 || o.publicURL == "" || keygate.HashToken(secret) != inv.Hash {
		return &unsendable{"the invitation's link cannot be rebuilt: email.link_key (or admin.public_url) changed since it was created; invite the email again to send a new link"}
	}
	org, err := o.store.FindOrganizationByID(ctx, inv.OrganizationID)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return &unsendable{"the invitation's organization was deleted; not sent"}
	} else if err != nil {
		return err
	}
	d := o.invitationData(ctx, inv, org, o.publicURL+manage.InvitationPathPrefix+secret)
	e.Subject, e.Text, e.HTML, err = render("invitation", d)
	if err != nil {
		return &unsendable{fmt.Sprintf("rendering the invitation email: %v", err)}
	}
	return nil
}

func (o *Outbox) invitationData(ctx context.Context, inv *keygate.Invitation, org *keygate.Organization, link string) *data {
	d := &data{Recipient: inv.Email, Organization: org, Role: inv.Role, InvitationURL: link,
		ExpiresAt: inv.ExpiresAt.UTC().Format("Mon, 2 Jan 2006 15:04 MST"), Actor: "An administrator"}
	if inv.InvitedBy != "cli" && !strings.HasPrefix(inv.InvitedBy, "admin-key:") {
		if u, err := o.store.FindUserByID(ctx, inv.InvitedBy); err == nil {
			d.Actor = u.Email
			if u.Name != "" {
				d.Actor = u.Name + " (" + u.Email + ")"
			}
		}
	}
	return d
}
