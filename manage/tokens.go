package manage

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/detach"
)

// FindAPI returns the API named name. With name "" it returns the only
// configured API, or EINVALID naming the choices when there are several.
func FindAPI(apis []*keygate.API, name string) (*keygate.API, error) {
	if name == "" && len(apis) == 1 {
		return apis[0], nil
	}
	names := make([]string, len(apis))
	for i, a := range apis {
		if a.Name == name {
			return a, nil
		}
		names[i] = a.Name
	}
	if name == "" {
		return nil, keygate.Errorf(keygate.EINVALID, "Choose an API: %s.", strings.Join(names, ", "))
	}
	return nil, keygate.Errorf(keygate.EINVALID, "Unknown API %q: choose one of %s.", name, strings.Join(names, ", "))
}

// ExpiryChoices returns the expirations offered for api's tokens, in the
// order forms show them; "never" only when the API allows it.
func ExpiryChoices(api *keygate.API) []keygate.ExpiryChoice {
	out := make([]keygate.ExpiryChoice, 0, len(keygate.ExpiryChoices))
	for _, c := range keygate.ExpiryChoices {
		if c == keygate.ExpiryNever && !api.Tokens.AllowNever {
			continue
		}
		out = append(out, c)
	}
	return out
}

// APIScopes returns every scope a token of api can carry, in the order the
// config names them: the API's own scope list, or, when it declares none,
// every scope its routes and MCP endpoint require.
func APIScopes(api *keygate.API) []string {
	if len(api.Tokens.Scopes) > 0 {
		return slices.Clone(api.Tokens.Scopes)
	}
	var out []string
	add := func(scopes []string) {
		for _, s := range scopes {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	for _, r := range api.Routes {
		add(r.Scopes)
	}
	if api.MCP != nil {
		add(api.MCP.Scopes)
	}
	return out
}

// TokenScopes decides the scopes of a new token of api from what its
// creator asked for. Scopes narrow a token; they are never needed to make
// one useful: nil (none chosen) gives every scope of the API, so the token
// reaches whatever the organization's plan and entitlements allow. An
// explicitly empty list is refused when the API has scopes, because it
// would make a token that no scoped route accepts.
func TokenScopes(api *keygate.API, requested []string) ([]string, error) {
	if requested == nil {
		return APIScopes(api), nil
	}
	chosen := make([]string, 0, len(requested))
	for _, s := range requested {
		if s = strings.TrimSpace(s); s != "" {
			chosen = append(chosen, s)
		}
	}
	if len(chosen) == 0 {
		all := APIScopes(api)
		if len(all) > 0 {
			return nil, keygate.Errorf(keygate.EINVALID,
				"Choose at least one scope: a token without scopes can call none of this API's routes. Leave scopes out to give the token all of them (%s).",
				strings.Join(all, ", "))
		}
	}
	return chosen, nil
}

// CreateToken validates req against api's token policy and stores the token,
// unless org already holds the most active tokens it may have for api; then
// the error is ECONFLICT with keygate.TooManyTokensError's message. It
// returns the stored token and its secret, which the caller shows once and
// then forgets. req's OrganizationID and API are taken from org and api,
// its scopes decided by TokenScopes.
// It sends no webhook event: Tokens.Create does.
func CreateToken(ctx context.Context, tokens keygate.TokenService, api *keygate.API, org *keygate.Organization, req keygate.TokenRequest, now time.Time) (*keygate.Token, string, error) {
	req.OrganizationID = org.ID
	req.API = api.Name
	scopes, err := TokenScopes(api, req.Scopes)
	if err != nil {
		return nil, "", err
	}
	req.Scopes = scopes
	tok, secret, err := keygate.NewToken(api.Tokens, req, now)
	if err != nil {
		return nil, "", err
	}
	if err := tokens.CreateToken(ctx, tok, api.MaxActiveTokensFor(org)); err != nil {
		return nil, "", err
	}
	return tok, secret, nil
}

// ListTokens returns org's tokens that are not deleted, expired ones
// included, newest first.
func ListTokens(ctx context.Context, tokens keygate.TokenService, org *keygate.Organization) ([]*keygate.Token, error) {
	return tokens.ListTokens(ctx, keygate.TokenFilter{OrganizationID: org.ID})
}

// PendingUsage is what this instance has seen of tokens' use but may not
// have written yet; *gateway.Usage is one.
type PendingUsage interface {
	PendingLastUsed(tokenID string) (time.Time, bool)
}

// MergeLastUsed moves each token's LastUsedAt forward to the use pending
// holds for it, so what a page or the API shows includes requests this
// instance has not flushed yet. A nil pending changes nothing.
func MergeLastUsed(pending PendingUsage, tokens ...*keygate.Token) {
	if pending == nil {
		return
	}
	for _, t := range tokens {
		seen, ok := pending.PendingLastUsed(t.ID)
		if ok && (t.LastUsedAt == nil || seen.After(*t.LastUsedAt)) {
			t.LastUsedAt = &seen
		}
	}
}

// FindToken returns org's token with the given id; ENOTFOUND when there is
// none, when it is deleted, or when it belongs to another organization.
func FindToken(ctx context.Context, tokens keygate.TokenService, org *keygate.Organization, id string) (*keygate.Token, error) {
	tok, err := tokens.FindTokenByID(ctx, id)
	if err != nil && keygate.ErrorCode(err) != keygate.ENOTFOUND {
		return nil, err
	}
	if tok == nil || tok.OrganizationID != org.ID || tok.RevokedAt != nil {
		return nil, keygate.Errorf(keygate.ENOTFOUND, "Token %q not found.", id)
	}
	return tok, nil
}

// DeleteToken revokes org's token id at now. The gateway refuses it from the
// next request on; the store publishes the change to every instance.
// It sends no webhook event: Tokens.Delete does.
func DeleteToken(ctx context.Context, tokens keygate.TokenService, org *keygate.Organization, id string, now time.Time) (*keygate.Token, error) {
	tok, err := FindToken(ctx, tokens, org, id)
	if err != nil {
		return nil, err
	}
	if err := tokens.RevokeToken(ctx, tok.ID, now); err != nil {
		return nil, err
	}
	at := now.UTC()
	tok.RevokedAt = &at
	return tok, nil
}

// RotateToken gives org's token id a new secret, keeping its id, name,
// scopes, environment and expiry, so its usage history and its place
// under the active-token limit stay with it. The old secret keeps working
// for grace; the gateway refuses it from then on, on every instance. It
// returns the token as updated and the new secret, which the caller shows
// once. ENOTFOUND for an unknown or deleted token, ECONFLICT for an
// expired one. It sends no webhook event: Tokens.Rotate does.
func RotateToken(ctx context.Context, tokens keygate.TokenService, apis []*keygate.API, org *keygate.Organization, id string, grace keygate.RotationGrace, now time.Time) (*keygate.Token, string, error) {
	if _, err := grace.Duration(); err != nil {
		return nil, "", err
	}
	tok, err := FindToken(ctx, tokens, org, id)
	if err != nil {
		return nil, "", err
	}
	if err := keygate.CheckRotatable(tok, now); err != nil {
		return nil, "", err
	}
	api, err := FindAPI(apis, tok.API)
	if err != nil {
		return nil, "", keygate.Errorf(keygate.ECONFLICT, "Token %q belongs to API %q, which is no longer configured.", tok.ID, tok.API)
	}
	rot, secret, err := keygate.NewTokenSecret(api.Tokens, tok, grace, now)
	if err != nil {
		return nil, "", err
	}
	rotated, err := tokens.RotateToken(ctx, rot)
	if err != nil {
		return nil, "", err
	}
	return rotated, secret, nil
}

// TokenEvents hears that a token was created or deleted, once the change
// is committed. *webhook.Dispatcher is one: it stores a delivery for each of
// the organization's endpoints that subscribes to the event.
type TokenEvents interface {
	EmitToken(ctx context.Context, event string, tok *keygate.Token, org *keygate.Organization) error
}

// Tokens creates and deletes tokens for people and tells the
// organization's webhooks (token.created, token.deleted). The dashboard,
// the management API and the CLI all create and delete through it, so
// every path sends the same events.
type Tokens struct {
	Store keygate.TokenService
	// Events, when set, hears of every token created or deleted; nil when
	// the store keeps no webhooks.
	Events TokenEvents
	// Logger records an event that could not be stored; nil: slog.Default().
	Logger *slog.Logger
}

// Create is CreateToken followed by token.created.
func (t Tokens) Create(ctx context.Context, api *keygate.API, org *keygate.Organization, req keygate.TokenRequest, now time.Time) (*keygate.Token, string, error) {
	tok, secret, err := CreateToken(ctx, t.Store, api, org, req, now)
	if err != nil {
		return nil, "", err
	}
	t.emit(ctx, keygate.EventTokenCreated, tok, org)
	return tok, secret, nil
}

// Delete is DeleteToken followed by token.deleted.
func (t Tokens) Delete(ctx context.Context, org *keygate.Organization, id string, now time.Time) (*keygate.Token, error) {
	tok, err := DeleteToken(ctx, t.Store, org, id, now)
	if err != nil {
		return nil, err
	}
	t.emit(ctx, keygate.EventTokenDeleted, tok, org)
	return tok, nil
}

// Rotate is RotateToken followed by token.rotated.
func (t Tokens) Rotate(ctx context.Context, apis []*keygate.API, org *keygate.Organization, id string, grace keygate.RotationGrace, now time.Time) (*keygate.Token, string, error) {
	tok, secret, err := RotateToken(ctx, t.Store, apis, org, id, grace, now)
	if err != nil {
		return nil, "", err
	}
	t.emit(ctx, keygate.EventTokenRotated, tok, org)
	return tok, secret, nil
}

// emit sends a token event. The token change is already committed, so a
// failure here is logged rather than returned: refusing the action would
// tell the caller it did not happen when it did. The event is stored even
// if the caller goes away meanwhile, but not past the caller's deadline: a
// database that stops answering does not hold the request beyond it.
func (t Tokens) emit(ctx context.Context, event string, tok *keygate.Token, org *keygate.Organization) {
	if t.Events == nil {
		return
	}
	ctx, cancel := detach.Context(ctx)
	defer cancel()
	if err := t.Events.EmitToken(ctx, event, tok, org); err != nil {
		logger := t.Logger
		if logger == nil {
			logger = slog.Default()
		}
		logger.ErrorContext(ctx, "webhook event could not be stored; it will not be sent",
			"event", event, "org", org.Slug, "token_id", tok.ID, "hint", tok.Hint, "error", err)
	}
}

// TokenLimit is how many active tokens an organization holds for one API
// and how many it may hold (0: no limit).
type TokenLimit struct {
	API    *keygate.API
	Active int
	Max    int
}

// Reached reports whether no further token can be created.
func (l TokenLimit) Reached() bool {
	return l.Max > 0 && l.Active >= l.Max
}

// TokenLimits counts org's active tokens per API from a ListTokens result.
func TokenLimits(apis []*keygate.API, org *keygate.Organization, tokens []*keygate.Token, now time.Time) []TokenLimit {
	out := make([]TokenLimit, len(apis))
	for i, api := range apis {
		out[i] = TokenLimit{API: api, Max: api.MaxActiveTokensFor(org)}
		for _, t := range tokens {
			if t.API == api.Name && t.Active(now) {
				out[i].Active++
			}
		}
	}
	return out
}
