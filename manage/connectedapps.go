package manage

import (
	"context"
	"net/url"
	"slices"
	"time"

	"github.com/keygate/keygate"
)

// Connected apps are the MCP clients people let into an organization with
// OAuth, one per grant. Who sees and revokes which:
//
//   - every member, the grants they approved themselves;
//   - the organization's owners and site administrators, every grant made
//     for the organization: each one reads the organization's data with
//     its entitlements, whoever approved it.
//
// Lists hold the grants still in force: not revoked, with a token not yet
// expired, and approved by someone who is still a member (the MCP endpoint
// refuses the others anyway). Revoking ends a grant at once: the MCP
// endpoint reads the grant on every request, so the client's access token
// is refused from its next request on and its refresh token is dead.

// ConnectedApp is a grant as the dashboard and the API show it.
type ConnectedApp struct {
	Grant        *keygate.OAuthGrant
	Organization *keygate.Organization
	// User approved the grant; nil when the account no longer exists.
	User *keygate.User
	// ClientHost is the host of a client id that is a URL (a Client ID
	// Metadata Document): the client's name is its own claim, its host is
	// not.
	ClientHost string
	// RedirectHosts are the hosts a dynamically registered client sends
	// people back to; empty for clients from config and metadata documents,
	// whose registration keygate does not keep.
	RedirectHosts []string
}

// CanManageConnectedApps reports whether the caller sees and revokes every
// grant made for the organization, not only their own: owners and site
// administrators.
func (a *Access) CanManageConnectedApps() bool {
	return a.Admin || a.Role == keygate.RoleOwner
}

// ListConnectedApps returns the grants in force for a.Organization that
// the caller may see, newest first.
func ListConnectedApps(ctx context.Context, store keygate.Store, c Caller, a *Access, now time.Time) ([]*ConnectedApp, error) {
	filter := keygate.OAuthGrantFilter{OrganizationID: a.Organization.ID}
	if !a.CanManageConnectedApps() {
		if c.User == nil {
			return nil, nil
		}
		filter.UserID = c.User.ID
	}
	grants, err := store.ListOAuthGrants(ctx, filter)
	if err != nil {
		return nil, err
	}
	members, err := store.ListMemberships(ctx, keygate.MembershipFilter{OrganizationID: a.Organization.ID})
	if err != nil {
		return nil, err
	}
	isMember := map[string]bool{}
	for _, m := range members {
		isMember[m.UserID] = true
	}
	l := newAppLoader(store)
	var out []*ConnectedApp
	for _, g := range grants {
		if !inForce(g, now) || !isMember[g.UserID] {
			continue
		}
		app, err := l.app(ctx, g, a.Organization)
		if err != nil {
			return nil, err
		}
		out = append(out, app)
	}
	return out, nil
}

// FindConnectedApp returns the grant id of a.Organization when the caller
// may see it and it is not revoked; ENOTFOUND otherwise, so ids of other
// people's grants reveal nothing.
func FindConnectedApp(ctx context.Context, store keygate.Store, c Caller, a *Access, id string) (*ConnectedApp, error) {
	g, err := findActiveGrant(ctx, store, id)
	if err != nil {
		return nil, err
	}
	own := c.User != nil && g.UserID == c.User.ID
	if g.OrganizationID != a.Organization.ID || !(own || a.CanManageConnectedApps()) {
		return nil, appNotFound(id)
	}
	return newAppLoader(store).app(ctx, g, a.Organization)
}

// RevokeConnectedApp revokes the grant id of a.Organization, found as by
// FindConnectedApp, and returns it.
func RevokeConnectedApp(ctx context.Context, store keygate.Store, c Caller, a *Access, id string, now time.Time) (*ConnectedApp, error) {
	app, err := FindConnectedApp(ctx, store, c, a, id)
	if err != nil {
		return nil, err
	}
	return app, revokeGrant(ctx, store, app, now)
}

// ListMyConnectedApps returns the grants in force that the calling user
// approved, in every organization they belong to, newest first.
func ListMyConnectedApps(ctx context.Context, store keygate.Store, c Caller, now time.Time) ([]*ConnectedApp, error) {
	if err := requireUser(c); err != nil {
		return nil, err
	}
	grants, err := store.ListOAuthGrants(ctx, keygate.OAuthGrantFilter{UserID: c.User.ID})
	if err != nil {
		return nil, err
	}
	memberships, err := store.ListMemberships(ctx, keygate.MembershipFilter{UserID: c.User.ID})
	if err != nil {
		return nil, err
	}
	isMember := map[string]bool{}
	for _, m := range memberships {
		isMember[m.OrganizationID] = true
	}
	l := newAppLoader(store)
	var out []*ConnectedApp
	for _, g := range grants {
		if !inForce(g, now) || !isMember[g.OrganizationID] {
			continue
		}
		org, err := l.organization(ctx, g.OrganizationID)
		if err != nil {
			return nil, err
		} else if org == nil {
			continue
		}
		app, err := l.app(ctx, g, org)
		if err != nil {
			return nil, err
		}
		out = append(out, app)
	}
	return out, nil
}

// FindMyConnectedApp returns the grant id when the calling user approved
// it and it is not revoked; ENOTFOUND otherwise.
func FindMyConnectedApp(ctx context.Context, store keygate.Store, c Caller, id string) (*ConnectedApp, error) {
	if err := requireUser(c); err != nil {
		return nil, err
	}
	g, err := findActiveGrant(ctx, store, id)
	if err != nil {
		return nil, err
	}
	if g.UserID != c.User.ID {
		return nil, appNotFound(id)
	}
	l := newAppLoader(store)
	org, err := l.organization(ctx, g.OrganizationID)
	if err != nil {
		return nil, err
	} else if org == nil {
		// The organization is gone, and with it any use of the grant.
		return nil, appNotFound(id)
	}
	return l.app(ctx, g, org)
}

// RevokeMyConnectedApp revokes the grant id, found as by
// FindMyConnectedApp, and returns it.
func RevokeMyConnectedApp(ctx context.Context, store keygate.Store, c Caller, id string, now time.Time) (*ConnectedApp, error) {
	app, err := FindMyConnectedApp(ctx, store, c, id)
	if err != nil {
		return nil, err
	}
	return app, revokeGrant(ctx, store, app, now)
}

func requireUser(c Caller) error {
	if c.User == nil {
		return keygate.Errorf(keygate.EFORBIDDEN, "Only a logged-in user has connected apps of their own; an admin key sees an organization's.")
	}
	return nil
}

func appNotFound(id string) error {
	return keygate.Errorf(keygate.ENOTFOUND, "Connected app %q not found.", id)
}

// inForce reports whether a listed grant still gives access at now.
func inForce(g *keygate.OAuthGrant, now time.Time) bool {
	return g.Active() && now.Before(g.ExpiresAt)
}

func findActiveGrant(ctx context.Context, store keygate.Store, id string) (*keygate.OAuthGrant, error) {
	g, err := store.FindOAuthGrant(ctx, id)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND || (err == nil && !g.Active()) {
		return nil, appNotFound(id)
	} else if err != nil {
		return nil, err
	}
	return g, nil
}

func revokeGrant(ctx context.Context, store keygate.Store, app *ConnectedApp, now time.Time) error {
	err := store.RevokeOAuthGrant(ctx, app.Grant.ID, now.UTC())
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		// Revoked by someone else, or by the client, in the meantime.
		return appNotFound(app.Grant.ID)
	} else if err != nil {
		return err
	}
	at := now.UTC()
	app.Grant.RevokedAt = &at
	return nil
}

// appLoader fills in ConnectedApps, reading each user, client and
// organization once however many grants name it.
type appLoader struct {
	store   keygate.Store
	users   map[string]*keygate.User
	clients map[string][]string
	orgs    map[string]*keygate.Organization
}

func newAppLoader(store keygate.Store) *appLoader {
	return &appLoader{store: store, users: map[string]*keygate.User{}, clients: map[string][]string{}, orgs: map[string]*keygate.Organization{}}
}

func (l *appLoader) app(ctx context.Context, g *keygate.OAuthGrant, org *keygate.Organization) (*ConnectedApp, error) {
	app := &ConnectedApp{Grant: g, Organization: org, ClientHost: metadataClientHost(g.ClientID)}
	var err error
	if app.User, err = l.user(ctx, g.UserID); err != nil {
		return nil, err
	}
	if app.ClientHost == "" {
		if app.RedirectHosts, err = l.redirectHosts(ctx, g.ClientID); err != nil {
			return nil, err
		}
	}
	return app, nil
}

func (l *appLoader) user(ctx context.Context, id string) (*keygate.User, error) {
	if u, ok := l.users[id]; ok {
		return u, nil
	}
	u, err := l.store.FindUserByID(ctx, id)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		u, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	l.users[id] = u
	return u, nil
}

// organization returns nil when the organization no longer exists.
func (l *appLoader) organization(ctx context.Context, id string) (*keygate.Organization, error) {
	if o, ok := l.orgs[id]; ok {
		return o, nil
	}
	o, err := l.store.FindOrganizationByID(ctx, id)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		o, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	l.orgs[id] = o
	return o, nil
}

// redirectHosts returns the distinct hosts of a registered client's
// redirect URIs, in the order registered; none for a client keygate keeps
// no registration of.
func (l *appLoader) redirectHosts(ctx context.Context, clientID string) ([]string, error) {
	if hosts, ok := l.clients[clientID]; ok {
		return hosts, nil
	}
	client, err := l.store.FindOAuthClient(ctx, clientID)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		client, err = &keygate.OAuthClient{}, nil
	}
	if err != nil {
		return nil, err
	}
	var hosts []string
	for _, raw := range client.RedirectURIs {
		if u, err := url.Parse(raw); err == nil && u.Host != "" && !slices.Contains(hosts, u.Host) {
			hosts = append(hosts, u.Host)
		}
	}
	l.clients[clientID] = hosts
	return hosts, nil
}

// metadataClientHost is the host of a client id that is an HTTPS URL, ""
// for any other id.
func metadataClientHost(clientID string) string {
	u, err := url.Parse(clientID)
	if err != nil || u.Scheme != "https" {
		return ""
	}
	return u.Host
}
