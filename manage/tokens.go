package manage

import (
	"context"
	"strings"
	"time"

	"github.com/keygate/keygate"
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

// CreateToken validates req against api's token policy and stores the token,
// unless org already holds the most active tokens it may have for api; then
// the error is ECONFLICT with keygate.TooManyTokensError's message. It
// returns the stored token and its secret, which the caller shows once and
// then forgets. req's OrganizationID and API are taken from org and api.
func CreateToken(ctx context.Context, tokens keygate.TokenService, api *keygate.API, org *keygate.Organization, req keygate.TokenRequest, now time.Time) (*keygate.Token, string, error) {
	req.OrganizationID = org.ID
	req.API = api.Name
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
