package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/audit"
)

// A change and its audit entries commit together (RecordChange): an entry
// that cannot be stored undoes the change, and a change that fails stores
// no entry. audit.Store makes every audited change through RecordChange,
// so the suite runs it too: every change it records is refused whole when
// the database refuses the entry, and a change that is stored has exactly
// the entries it had when they were written after it.
var auditChangeTests = []test{
	{"CommitsWithItsEntries", testAuditChangeCommits},
	{"EntryRefusedUndoesTheChange", testAuditChangeEntryRefused},
	{"ChangeFailedStoresNoEntry", testAuditChangeFailed},
	{"UserSessionAndClientWritesJoin", testAuditChangeJoinsEveryWrite},
	{"ReadsJoin", testAuditChangeReadsJoin},
	{"EveryAuditedChangeUndoneWhenTheLogRefuses", testAuditedChangesUndone},
	{"AuditedChangesRecordTheirEntries", testAuditedChangesRecorded},
}

// actorAnn is who makes the suite's audited changes.
var actorAnn = keygate.Actor{Type: keygate.ActorUser, ID: "usr_ann", Name: "ann@acme.test", Address: "203.0.113.9", UserAgent: "curl/8"}

// createTokenAudited is a change that creates tok and describes it with
// entry, targeting the token.
func (e *env) createTokenAudited(tok *keygate.Token, entry *keygate.AuditEntry) func(context.Context) ([]*keygate.AuditEntry, error) {
	return func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := e.store.CreateToken(ctx, tok, 0); err != nil {
			return nil, err
		}
		entry.TargetID = tok.ID
		return []*keygate.AuditEntry{entry}, nil
	}
}

// auditLog returns every entry, newest first, with its details compacted.
func (e *env) auditLog() []*keygate.AuditEntry {
	e.t.Helper()
	got, err := e.store.ListAuditEntries(e.ctx, keygate.AuditFilter{Limit: keygate.MaxAuditPage})
	must(e.t, "ListAuditEntries", err)
	for _, entry := range got {
		entry.Details = json.RawMessage(compactJSON(e.t, entry.Details))
	}
	return got
}

func testAuditChangeCommits(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	tok := e.newToken(org.ID, "cannmenus", e.now)
	entry := &keygate.AuditEntry{At: e.now, Action: keygate.AuditTokenCreated, Actor: actorAnn, OrganizationID: org.ID,
		Details: json.RawMessage(`{"name":"Production"}`)}
	must(t, "RecordChange", e.store.RecordChange(e.ctx, e.createTokenAudited(tok, entry)))
	if entry.ID == "" || entry.Seq <= 0 || entry.At.IsZero() {
		t.Errorf("RecordChange left the entry's ID %q, Seq %d, At %v; want them filled in", entry.ID, entry.Seq, entry.At)
	}
	_, err := e.open().FindTokenByID(e.ctx, tok.ID)
	must(t, "FindTokenByID, from another handle", err)
	equal(t, "audit log", e.auditLog(), []*keygate.AuditEntry{entry})
}

func testAuditChangeEntryRefused(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	taken := e.appendAudit(e.store, keygate.AuditLoginFailed, "", "ann@acme.test", e.now)
	tok := e.newToken(org.ID, "cannmenus", e.now)
	// An id already in the log: the database refuses the entry.
	entry := &keygate.AuditEntry{ID: taken.ID, At: e.now, Action: keygate.AuditTokenCreated, Actor: actorAnn,
		OrganizationID: org.ID, Details: json.RawMessage(`{}`)}
	wantCode(t, "RecordChange with an entry the log refuses",
		e.store.RecordChange(e.ctx, e.createTokenAudited(tok, entry)), keygate.ECONFLICT)
	_, err := e.store.FindTokenByID(e.ctx, tok.ID)
	wantCode(t, "FindTokenByID of the token whose entry was refused", err, keygate.ENOTFOUND)
	tokens, err := e.store.ListTokens(e.ctx, keygate.TokenFilter{OrganizationID: org.ID, IncludeRevoked: true})
	must(t, "ListTokens", err)
	equal(t, "tokens", tokens, []*keygate.Token{})
	equal(t, "audit log", e.auditLog(), []*keygate.AuditEntry{taken})

	// The same change with an entry the log takes goes through.
	entry.ID = ""
	must(t, "RecordChange", e.store.RecordChange(e.ctx, e.createTokenAudited(tok, entry)))
	equal(t, "audit log", e.auditLog(), []*keygate.AuditEntry{entry, taken})
}

func testAuditChangeFailed(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	tok := e.newToken(org.ID, "cannmenus", e.now)
	refused := keygate.Errorf(keygate.EINVALID, "Refused after the token was written.")
	err := e.store.RecordChange(e.ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := e.store.CreateToken(ctx, tok, 0); err != nil {
			return nil, err
		}
		return []*keygate.AuditEntry{{Action: keygate.AuditTokenCreated, Actor: actorAnn, TargetID: tok.ID}}, refused
	})
	if !errors.Is(err, refused) {
		t.Errorf("RecordChange = %v, want the change's own error %v", err, refused)
	}
	_, err = e.store.FindTokenByID(e.ctx, tok.ID)
	wantCode(t, "FindTokenByID of the failed change's token", err, keygate.ENOTFOUND)
	equal(t, "audit log", e.auditLog(), []*keygate.AuditEntry{})
}

// joinTimeout bounds a change whose writes should join its transaction: a
// write that waits for a connection the transaction holds instead (the
// SQLite store's one writer) fails then rather than hanging the suite.
const joinTimeout = 10 * time.Second

// The writes no audited change makes yet (users, sessions, OAuth clients)
// join a RecordChange transaction too, as RecordChange promises of the
// store's writes through its context: inside it each succeeds, and when
// the change then fails none is stored. On SQLite one that took the
// writer connection of its own would wait for it until the deadline.
func testAuditChangeJoinsEveryWrite(t *testing.T, e *env) {
	ann := e.createUser("ann@acme.test")
	kept, swept := e.createSession(ann.ID), e.createSession(ann.ID)
	renamed := *ann
	renamed.Name = "Ann Renamed"
	bob := &keygate.User{Email: "bob@acme.test", Name: "Bob", PasswordHash: ann.PasswordHash, CreatedAt: e.now}
	client := &keygate.OAuthClient{Name: "Example MCP client", RedirectURIs: []string{"https://client.example.com/cb"},
		GrantTypes: []string{keygate.OAuthGrantAuthorizationCode}, TokenEndpointAuthMethod: keygate.OAuthAuthSecretBasic,
		SecretHash: keygate.HashToken("secret"), Source: keygate.OAuthClientRegistered}

	ctx, cancel := context.WithTimeout(e.ctx, joinTimeout)
	defer cancel()
	refused := keygate.Errorf(keygate.EINVALID, "Refused after every write.")
	err := e.store.RecordChange(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		for _, w := range []struct {
			name  string
			write func() error
		}{
			{"CreateUser", func() error { return e.store.CreateUser(ctx, bob) }},
			{"UpdateUser", func() error { return e.store.UpdateUser(ctx, &renamed) }},
			{"CreateOAuthClient", func() error { return e.store.CreateOAuthClient(ctx, client) }},
			{"DeleteSession", func() error { return e.store.DeleteSession(ctx, kept.ID) }},
			{"DeleteUserSessions", func() error { return e.store.DeleteUserSessions(ctx, ann.ID) }},
		} {
			if err := w.write(); err != nil {
				t.Errorf("%s inside RecordChange: %v", w.name, err)
			}
		}
		return nil, refused
	})
	if !errors.Is(err, refused) {
		t.Errorf("RecordChange = %v, want the change's own error %v", err, refused)
	}

	_, err = e.store.FindUserByEmail(e.ctx, bob.Email)
	wantCode(t, "FindUserByEmail of the user created in the failed change", err, keygate.ENOTFOUND)
	got, err := e.store.FindUserByID(e.ctx, ann.ID)
	must(t, "FindUserByID", err)
	if got.Name != ann.Name {
		t.Errorf("user's name %q after the failed change renamed it, want %q", got.Name, ann.Name)
	}
	if client.ID != "" {
		_, err = e.store.FindOAuthClient(e.ctx, client.ID)
		wantCode(t, "FindOAuthClient of the client created in the failed change", err, keygate.ENOTFOUND)
	}
	for _, s := range []*keygate.Session{kept, swept} {
		_, err := e.store.FindSession(e.ctx, s.ID)
		must(t, "FindSession of a session the failed change deleted", err)
	}
}

// A read made inside RecordChange with the context it hands the change
// joins the change's transaction as its writes do: it sees the change's
// own uncommitted write, and it needs no connection beside the one the
// transaction holds, so it completes on a handle with one connection
// (on PostgreSQL a read that asked the pool for a second would wait for it
// until the deadline). Outside the change the write is unseen until the
// commit.
func testAuditChangeReadsJoin(t *testing.T, e *env) {
	store := e.factory.OpenOneConnection(t, e.dsn)
	t.Cleanup(func() { store.Close() })
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
	ctx, cancel := context.WithTimeout(e.ctx, joinTimeout)
	defer cancel()
	err := store.RecordChange(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := store.CreateOrganization(ctx, org); err != nil {
			return nil, err
		}
		got, err := store.FindOrganizationByID(ctx, org.ID)
		must(t, "FindOrganizationByID inside the change that created it", err)
		if got != nil && got.Slug != org.Slug {
			t.Errorf("FindOrganizationByID inside the change: slug %q, want %q", got.Slug, org.Slug)
		}
		orgs, err := store.ListOrganizations(ctx)
		must(t, "ListOrganizations inside the change", err)
		if len(orgs) != 1 || orgs[0].ID != org.ID {
			t.Errorf("ListOrganizations inside the change: %v, want the organization it created", orgs)
		}
		_, err = e.store.FindOrganizationByID(e.ctx, org.ID)
		wantCode(t, "FindOrganizationByID outside the change, before its commit", err, keygate.ENOTFOUND)
		return []*keygate.AuditEntry{{Action: keygate.AuditOrganizationCreated, Actor: actorAnn, OrganizationID: org.ID, TargetID: org.ID}}, nil
	})
	must(t, "RecordChange", err)
	_, err = e.store.FindOrganizationByID(e.ctx, org.ID)
	must(t, "FindOrganizationByID after the commit", err)
}

// auditedStore is the store wrapped as every door uses it, acting as Ann.
// Entries it ships are collected in shipped.
func (e *env) auditedStore(shipped *[]*keygate.AuditEntry) (keygate.Store, context.Context) {
	log := &audit.Log{Store: e.store, Shipper: func(_ context.Context, entry *keygate.AuditEntry) {
		*shipped = append(*shipped, entry)
	}}
	return audit.Wrap(e.store, log), keygate.WithActor(e.ctx, actorAnn)
}

// world is everything an audited change can change, as the store reads it.
type world struct {
	Organizations []*keygate.Organization
	Users         []*keygate.User
	Memberships   []*keygate.Membership
	Tokens        []*keygate.Token
	AdminKeys     []*keygate.AdminKey
	Webhooks      []*keygate.Webhook
	Invitations   []*keygate.Invitation
	EmailSettings *keygate.EmailSettings
	OAuthGrants   []*keygate.OAuthGrant
	// Found: whether each of the sessions and OAuth codes the changes
	// would create exists.
	Found map[string]bool
}

func (e *env) world(org string, sessionIDs, codeHashes []string) world {
	e.t.Helper()
	var w world
	var err error
	read := func(what string, err error) { e.t.Helper(); must(e.t, what, err) }
	w.Organizations, err = e.store.ListOrganizations(e.ctx)
	read("ListOrganizations", err)
	w.Users, err = e.store.ListUsers(e.ctx)
	read("ListUsers", err)
	w.Memberships, err = e.store.ListMemberships(e.ctx, keygate.MembershipFilter{})
	read("ListMemberships", err)
	w.Tokens, err = e.store.ListTokens(e.ctx, keygate.TokenFilter{IncludeRevoked: true})
	read("ListTokens", err)
	w.AdminKeys, err = e.store.ListAdminKeys(e.ctx)
	read("ListAdminKeys", err)
	w.Webhooks, err = e.store.ListWebhooks(e.ctx, org)
	read("ListWebhooks", err)
	w.Invitations, err = e.store.ListInvitations(e.ctx, keygate.InvitationFilter{OrganizationID: org})
	read("ListInvitations", err)
	w.EmailSettings, err = e.store.FindEmailSettings(e.ctx, org)
	read("FindEmailSettings", err)
	w.OAuthGrants, err = e.store.ListOAuthGrants(e.ctx, keygate.OAuthGrantFilter{IncludeRevoked: true})
	read("ListOAuthGrants", err)
	w.Found = map[string]bool{}
	for _, id := range sessionIDs {
		_, err := e.store.FindSession(e.ctx, id)
		w.Found[id] = err == nil
	}
	for _, hash := range codeHashes {
		_, err := e.store.FindOAuthCode(e.ctx, hash)
		w.Found[hash] = err == nil
	}
	return w
}

// testAuditedChangesUndone makes every audited change once the database
// refuses audit entries: each fails, and none is stored, nor shipped.
func testAuditedChangesUndone(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	ann, bob, dan := e.createUser("ann@acme.test"), e.createUser("bob@acme.test"), e.createUser("dan@acme.test")
	must(t, "SetMembership", e.store.SetMembership(e.ctx, &keygate.Membership{OrganizationID: org.ID, UserID: ann.ID, Role: keygate.RoleOwner, CreatedAt: e.now}))
	// A second owner, so that only the refused entry stops ann's demotion
	// and removal, not the only-owner rule.
	must(t, "SetMembership(dan)", e.store.SetMembership(e.ctx, &keygate.Membership{OrganizationID: org.ID, UserID: dan.ID, Role: keygate.RoleOwner, CreatedAt: e.now}))
	tok := e.createToken(org.ID, "cannmenus", e.now)
	key := e.createAdminKey("deploy", e.now)
	hook := e.createWebhook(e.store, org.ID, keygate.EventTokenCreated)
	inv := e.createInvitation(org.ID, "bob@acme.test", e.now)
	grant, _, _ := e.redeem(e.store)
	session := e.newSession(ann.ID, e.at(time.Hour))
	code := e.newOAuthCode("kgc_client")

	var shipped []*keygate.AuditEntry
	store, ctx := e.auditedStore(&shipped)
	before := e.world(org.ID, []string{session.ID}, []string{code.Hash})
	e.factory.RefuseAuditEntries(e.t, e.dsn)

	otherKey := &keygate.AdminKey{Name: "terraform", Hash: keygate.HashToken("adm_other"), Hint: "kg_admin_…ther", CreatedAt: e.now}
	changes := []struct {
		name string
		make func() error
	}{
		{"CreateToken", func() error { return store.CreateToken(ctx, e.newToken(org.ID, "cannmenus", e.now), 0) }},
		{"RotateToken", func() error { _, err := store.RotateToken(ctx, e.rotation(tok, e.now, time.Hour)); return err }},
		{"RevokeToken", func() error { return store.RevokeToken(ctx, tok.ID, e.now) }},
		{"CreateAdminKey", func() error { return store.CreateAdminKey(ctx, otherKey) }},
		{"RevokeAdminKey", func() error { return store.RevokeAdminKey(ctx, key.ID, e.now) }},
		{"SetMembership (added)", func() error {
			return store.SetMembership(ctx, &keygate.Membership{OrganizationID: org.ID, UserID: bob.ID, Role: keygate.RoleMember})
		}},
		{"SetMembership (role changed)", func() error {
			return store.SetMembership(ctx, &keygate.Membership{OrganizationID: org.ID, UserID: ann.ID, Role: keygate.RoleMember})
		}},
		{"DeleteMembership", func() error { return store.DeleteMembership(ctx, org.ID, ann.ID) }},
		{"CreateOrganization", func() error {
			return store.CreateOrganization(ctx, &keygate.Organization{Slug: "globex", Name: "Globex", Plan: "free"})
		}},
		{"UpdateOrganization", func() error {
			changed := *org
			changed.Plan = "pro"
			return store.UpdateOrganization(ctx, &changed)
		}},
		{"UpdateEmailSettings", func() error {
			return store.UpdateEmailSettings(ctx, &keygate.EmailSettings{OrganizationID: org.ID, Disabled: []string{keygate.EmailTokenCreated}})
		}},
		{"DeleteOrganization", func() error { return store.DeleteOrganization(ctx, org.ID) }},
		{"CreateOAuthCode", func() error { return store.CreateOAuthCode(ctx, code) }},
		{"RevokeOAuthGrant", func() error { return store.RevokeOAuthGrant(ctx, grant.ID, e.now) }},
		{"CreateWebhook", func() error {
			return store.CreateWebhook(ctx, &keygate.Webhook{OrganizationID: org.ID, URL: "https://siem.example.com/in", Secret: "whsec_x"}, 0)
		}},
		{"UpdateWebhook", func() error {
			changed := *hook
			changed.Disabled = true
			return store.UpdateWebhook(ctx, &changed)
		}},
		{"DeleteWebhook", func() error { return store.DeleteWebhook(ctx, hook.ID) }},
		{"CreateSession", func() error { return store.CreateSession(ctx, session) }},
		{"CreateInvitation", func() error {
			return store.CreateInvitation(ctx, e.newInvitation(org.ID, "cat@acme.test", e.now))
		}},
		{"AcceptInvitation", func() error { _, _, err := store.AcceptInvitation(ctx, inv.Hash, bob.ID, e.now); return err }},
		{"RevokeInvitation", func() error { return store.RevokeInvitation(ctx, org.ID, inv.ID, e.now) }},
	}
	for _, c := range changes {
		if err := c.make(); err == nil {
			t.Errorf("%s succeeded although its audit entry was refused", c.name)
		}
		after := e.world(org.ID, []string{session.ID}, []string{code.Hash})
		equal(t, c.name+" refused: what the store holds", after, before)
		before = after // each change's own effect reported, not its predecessors'
	}
	equal(t, "audit log", e.auditLog(), []*keygate.AuditEntry{})
	if len(shipped) != 0 {
		t.Errorf("%d entries shipped of changes that were not stored", len(shipped))
	}
}

// testAuditedChangesRecorded: a change stored through audit.Store has
// exactly its entries, with what the store did in the change (the new id,
// the rotated hint, the membership the acceptance added), shipped once
// stored.
func testAuditedChangesRecorded(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	bob := e.createUser("bob@acme.test")
	inv := e.createInvitation(org.ID, "bob@acme.test", e.now)
	var shipped []*keygate.AuditEntry
	store, ctx := e.auditedStore(&shipped)

	tok := e.newToken(org.ID, "cannmenus", e.now)
	tok.ID = ""
	must(t, "CreateToken", store.CreateToken(ctx, tok, 0))
	rot := e.rotation(tok, e.at(time.Minute), time.Hour)
	_, err := store.RotateToken(ctx, rot)
	must(t, "RotateToken", err)
	_, _, err = store.AcceptInvitation(ctx, inv.Hash, bob.ID, e.at(2*time.Minute))
	must(t, "AcceptInvitation", err)

	got := e.auditLog()
	type entry struct{ Action, OrganizationID, TargetID, Details string }
	var described []entry
	for i := len(got) - 1; i >= 0; i-- {
		equal(t, got[i].Action+" actor", got[i].Actor, actorAnn)
		described = append(described, entry{got[i].Action, got[i].OrganizationID, got[i].TargetID, string(got[i].Details)})
	}
	tokenJSON := func(hint, extra string) string {
		return `{"api":"cannmenus","environment":"live","expires_at":null,"hint":"` + hint + `","name":"` + tok.Name + `",` +
			extra + `"scopes":["products:read","stores:read"]}`
	}
	equal(t, "entries, oldest first", described, []entry{
		{keygate.AuditTokenCreated, org.ID, tok.ID, tokenJSON(tok.Hint, "")},
		{keygate.AuditTokenRotated, org.ID, tok.ID, tokenJSON(rot.Hint,
			`"previous_secret_expires_at":"`+rot.PreviousHashExpiresAt.Format(time.RFC3339Nano)+`",`)},
		{keygate.AuditInvitationAccepted, org.ID, inv.ID, compactJSON(t, json.RawMessage(`{"email":"bob@acme.test",
			"expires_at":"`+inv.ExpiresAt.Format(time.RFC3339Nano)+`","membership_added":true,"role":"member","user_id":"`+bob.ID+`"}`))},
		{keygate.AuditMemberAdded, org.ID, bob.ID, `{"email":"bob@acme.test","invitation_id":"` + inv.ID + `","role":"member","user_id":"` + bob.ID + `"}`},
	})
	if len(shipped) != len(got) {
		t.Fatalf("%d entries shipped, %d stored", len(shipped), len(got))
	}
	for i, s := range shipped {
		if stored := got[len(got)-1-i]; s.ID != stored.ID || s.Seq != stored.Seq {
			t.Errorf("shipped entry %d is %s (seq %d), stored %s (seq %d)", i, s.ID, s.Seq, stored.ID, stored.Seq)
		}
	}
}

// compactJSON is raw without spaces, keys sorted: PostgreSQL keeps details
// as jsonb, which reads back with spaces after separators.
func compactJSON(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("details %s: %v", raw, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
