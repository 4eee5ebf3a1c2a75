package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate"
)

// Prefixes of what the authorization server hands out. They share the API
// token shape (30 random base62 characters and a CRC32 checksum), so a
// malformed one is refused without touching the store, and secret scanners
// can recognise them. No API may use "kgo_" as its token prefix.
const (
	codePrefix         = "kgo_ac_"
	accessTokenPrefix  = "kgo_at_"
	refreshTokenPrefix = "kgo_rt_"
)

// IsAccessToken reports whether s has the shape of a keygate OAuth access
// token. It does not say whether the token is valid.
func IsAccessToken(s string) bool { return strings.HasPrefix(s, accessTokenPrefix) }

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// serveToken is the token endpoint: authorization_code (with PKCE) and
// refresh_token. No other grant exists, so nothing turns an API token or
// anything else into an OAuth token.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	form, client, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	s.maybePurge()
	switch form.Get("grant_type") {
	case keygate.OAuthGrantAuthorizationCode:
		s.exchangeCode(w, r.Context(), client, form)
	case keygate.OAuthGrantRefreshToken:
		s.refresh(w, r.Context(), client, form)
	case "":
		writeError(w, invalidRequest("The grant_type parameter is missing."))
	default:
		writeError(w, &authError{code: "unsupported_grant_type", description: "Only authorization_code and refresh_token are supported."})
	}
}

// clientRequest reads the form a client POSTs to the token and revocation
// endpoints and authenticates the client, answering itself when either
// fails.
func (s *Server) clientRequest(w http.ResponseWriter, r *http.Request) (url.Values, *keygate.OAuthClient, bool) {
	form, aerr := readTokenForm(w, r)
	if aerr != nil {
		writeError(w, aerr)
		return nil, nil, false
	}
	client, aerr := s.clientOf(r, form)
	if aerr != nil {
		writeClientError(w, r, aerr)
		return nil, nil, false
	}
	return form, client, true
}

// readTokenForm reads a POSTed form body (RFC 6749 §3.2: parameters in the
// body, form-encoded, none repeated).
func readTokenForm(w http.ResponseWriter, r *http.Request) (url.Values, *authError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		return nil, &authError{code: "invalid_request", description: "Use POST.", status: http.StatusMethodNotAllowed}
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return nil, invalidRequest("The request body must be application/x-www-form-urlencoded.")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, invalidRequest("The request body could not be read.")
	}
	for name, values := range r.PostForm {
		if len(values) > 1 {
			return nil, invalidRequest("The request repeats " + name + ".")
		}
	}
	return r.PostForm, nil
}

// clientOf authenticates the calling client from HTTP Basic or the form.
func (s *Server) clientOf(r *http.Request, form url.Values) (*keygate.OAuthClient, *authError) {
	id, secret := form.Get("client_id"), form.Get("client_secret")
	used := keygate.OAuthAuthNone
	if secret != "" {
		used = keygate.OAuthAuthSecretPost
	}
	if basicID, basicSecret, ok := r.BasicAuth(); ok {
		used = keygate.OAuthAuthSecretBasic
		if secret != "" {
			return nil, invalidRequest("Use one client authentication method, not two.")
		}
		// RFC 6749 §2.3.1: both parts are form-encoded before Basic.
		uid, err1 := url.QueryUnescape(basicID)
		usecret, err2 := url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil || (id != "" && id != uid) {
			return nil, invalidClient("Client authentication failed.")
		}
		id, secret = uid, usecret
	}
	if id == "" {
		return nil, invalidClient("The client_id parameter is missing.")
	}
	return s.authenticateClient(r.Context(), id, secret, used)
}

func writeClientError(w http.ResponseWriter, r *http.Request, e *authError) {
	if _, _, basic := r.BasicAuth(); basic && e.code == "invalid_client" {
		w.Header().Set("WWW-Authenticate", `Basic realm="keygate"`)
	}
	writeError(w, e)
}

func (s *Server) exchangeCode(w http.ResponseWriter, ctx context.Context, client *keygate.OAuthClient, form url.Values) {
	raw := form.Get("code")
	if !keygate.WellFormedToken(raw, codePrefix) {
		writeError(w, invalidGrant("The authorization code is invalid or expired."))
		return
	}
	hash := keygate.HashToken(raw)
	code, err := s.store.FindOAuthCode(ctx, hash)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		writeError(w, invalidGrant("The authorization code is invalid or expired."))
		return
	} else if err != nil {
		s.log.Error("oauth: finding authorization code failed", "err", err)
		writeError(w, serverError())
		return
	}
	now := s.now().UTC()
	// The redirect URI and the verifier are checked before reuse: only a
	// party holding the verifier could have redeemed the code, so a
	// replay without it (the code seen in a browser's history or a
	// proxy's log) proves no theft and must not revoke the owner's grant.
	switch {
	case code.ClientID != client.ID:
		writeError(w, invalidGrant("The authorization code was issued to another client."))
		return
	case form.Get("redirect_uri") != code.RedirectURI:
		writeError(w, invalidGrant("The redirect_uri does not match the authorization request."))
		return
	case !verifyPKCE(form.Get("code_verifier"), code.CodeChallenge):
		writeError(w, invalidGrant("The code_verifier does not match the code_challenge."))
		return
	case code.UsedAt != nil:
		s.revokeReusedCode(ctx, code, now)
		writeError(w, invalidGrant("The authorization code was already used; the access it granted is revoked."))
		return
	case !now.Before(code.ExpiresAt):
		writeError(w, invalidGrant("The authorization code is invalid or expired."))
		return
	}
	if aerr := sameResource(form.Get("resource"), code.Resource); aerr != nil {
		writeError(w, aerr)
		return
	}
	grant := &keygate.OAuthGrant{
		ID:             code.GrantID,
		ClientID:       client.ID,
		ClientName:     clientName(client),
		UserID:         code.UserID,
		OrganizationID: code.OrganizationID,
		Resource:       code.Resource,
		Scopes:         code.Scopes,
		CreatedAt:      now,
	}
	resp, tokens := s.newTokens(grant, now, code.Offline)
	err = s.store.RedeemOAuthCode(ctx, hash, now, grant, tokens...)
	if !s.spent(w, err, "authorization code", client.ID, code.GrantID) {
		return
	}
	s.log.Info("oauth: tokens issued", "client_id", client.ID, "grant_id", grant.ID, "user_id", grant.UserID, "org_id", grant.OrganizationID)
	writeJSON(w, http.StatusOK, resp)
}

// revokeReusedCode follows RFC 6749 §4.1.2: a code presented twice may
// have been stolen, so what its first use produced is revoked.
func (s *Server) revokeReusedCode(ctx context.Context, code *keygate.OAuthCode, now time.Time) {
	err := s.store.RevokeOAuthGrant(ctx, code.GrantID, now)
	if err != nil && keygate.ErrorCode(err) != keygate.ENOTFOUND {
		s.log.Error("oauth: revoking the grant of a reused code failed", "grant_id", code.GrantID, "err", err)
		return
	}
	s.log.Warn("oauth: authorization code used twice; its grant is revoked", "client_id", code.ClientID, "grant_id", code.GrantID)
}

func (s *Server) refresh(w http.ResponseWriter, ctx context.Context, client *keygate.OAuthClient, form url.Values) {
	raw := form.Get("refresh_token")
	if !keygate.WellFormedToken(raw, refreshTokenPrefix) {
		writeError(w, invalidGrant("The refresh token is invalid or expired."))
		return
	}
	hash := keygate.HashToken(raw)
	now := s.now().UTC()
	tok, grant, err := s.findTokenGrant(ctx, hash)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND || (err == nil && (tok.Kind != keygate.OAuthRefreshToken || tok.Expired(now) || !grant.Active())) {
		writeError(w, invalidGrant("The refresh token is invalid or expired."))
		return
	} else if err != nil {
		s.log.Error("oauth: finding refresh token failed", "err", err)
		writeError(w, serverError())
		return
	}
	if grant.ClientID != client.ID {
		writeError(w, invalidGrant("The refresh token was issued to another client."))
		return
	}
	narrowed, aerr := narrowScopes(form.Get("scope"), grant.Scopes)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if aerr := sameResource(form.Get("resource"), grant.Resource); aerr != nil {
		writeError(w, aerr)
		return
	}
	resp, tokens := s.newTokens(grant, now, true)
	if narrowed != nil {
		tokens[0].Scopes = narrowed
		resp.Scope = strings.Join(narrowed, " ")
	}
	err = s.store.RotateOAuthRefreshToken(ctx, hash, now, tokens...)
	if !s.spent(w, err, "refresh token", client.ID, grant.ID) {
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// spent reads the store's answer to spending a one-time credential (an
// authorization code, a refresh token) in one atomic step, and answers
// the client when it failed: one spent before means it may have been
// stolen, so the store has revoked the grant (RFC 6749 sections 4.1.2 and
// 10.4); one the store no longer has is invalid. It reports whether the
// credential was spent now.
func (s *Server) spent(w http.ResponseWriter, err error, what, clientID, grantID string) bool {
	switch keygate.ErrorCode(err) {
	case "":
		return true
	case keygate.ECONFLICT:
		s.log.Warn("oauth: "+what+" used twice; its grant is revoked", "client_id", clientID, "grant_id", grantID)
		writeError(w, invalidGrant("The "+what+" was already used; the access it granted is revoked."))
	case keygate.ENOTFOUND:
		writeError(w, invalidGrant("The "+what+" is invalid or expired."))
	default:
		s.log.Error("oauth: spending a "+what+" failed", "client_id", clientID, "grant_id", grantID, "err", err)
		writeError(w, serverError())
	}
	return false
}

// narrowScopes reads a refresh request's scope parameter (RFC 6749 §6):
// the new access token carries only the scopes asked for, which must all
// be the grant's; nil when none is asked for (or only offline_access),
// meaning the grant's. The refresh token keeps the grant's scopes, so a
// later refresh may ask for all of them again.
func narrowScopes(param string, granted []string) ([]string, *authError) {
	var asked []string
	for _, sc := range strings.Fields(param) {
		if sc == scopeOfflineAccess || slices.Contains(asked, sc) {
			continue
		}
		if !slices.Contains(granted, sc) {
			return nil, &authError{code: "invalid_scope", description: "A refresh cannot add scopes the user did not approve."}
		}
		asked = append(asked, sc)
	}
	if len(asked) == 0 || len(asked) == len(granted) {
		return nil, nil
	}
	// In the grant's order, so equal requests give equal tokens.
	narrowed := make([]string, 0, len(asked))
	for _, sc := range granted {
		if slices.Contains(asked, sc) {
			narrowed = append(narrowed, sc)
		}
	}
	return narrowed, nil
}

// findTokenGrant returns a stored token and its grant.
func (s *Server) findTokenGrant(ctx context.Context, hash string) (*keygate.OAuthToken, *keygate.OAuthGrant, error) {
	tok, err := s.store.FindOAuthToken(ctx, hash)
	if err != nil {
		return nil, nil, err
	}
	grant, err := s.store.FindOAuthGrant(ctx, tok.GrantID)
	if err != nil {
		return nil, nil, err
	}
	return tok, grant, nil
}

// newTokens makes an access token, and a refresh token when offline, for
// grant: the response to send and the records to store.
func (s *Server) newTokens(grant *keygate.OAuthGrant, now time.Time, offline bool) (tokenResponse, []*keygate.OAuthToken) {
	access := keygate.GenerateTokenSecret(accessTokenPrefix)
	resp := tokenResponse{
		AccessToken: access,
		TokenType:   "Bearer",
		ExpiresIn:   int64(s.accessTTL / time.Second),
		Scope:       strings.Join(grant.Scopes, " "),
	}
	tokens := []*keygate.OAuthToken{{
		Hash: keygate.HashToken(access), GrantID: grant.ID, Kind: keygate.OAuthAccessToken,
		CreatedAt: now, ExpiresAt: now.Add(s.accessTTL),
	}}
	if offline {
		resp.RefreshToken = keygate.GenerateTokenSecret(refreshTokenPrefix)
		tokens = append(tokens, &keygate.OAuthToken{
			Hash: keygate.HashToken(resp.RefreshToken), GrantID: grant.ID, Kind: keygate.OAuthRefreshToken,
			CreatedAt: now, ExpiresAt: now.Add(s.refreshTTL),
		})
	}
	return resp, tokens
}

// sameResource checks an optional `resource` parameter of a token request
// against the resource the grant is for (RFC 8707 §2.2).
func sameResource(requested, granted string) *authError {
	if requested == "" {
		return nil
	}
	canonical, err := canonicalResource(requested)
	if err != nil || canonical != granted {
		return &authError{code: "invalid_target", description: "The resource is not the one the user approved."}
	}
	return nil
}

// verifyPKCE checks an RFC 7636 code_verifier against an S256 challenge.
func verifyPKCE(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 || strings.ContainsFunc(verifier, notUnreserved) {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// validChallenge reports whether c looks like an S256 challenge: the
// unpadded base64url of 32 bytes.
func validChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil
}

// notUnreserved reports characters outside RFC 3986's unreserved set.
func notUnreserved(r rune) bool {
	return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' || r == '~')
}

// serveRevoke is RFC 7009 revocation. Revoking either token of a grant
// revokes the grant, and with it every token it produced. Unknown tokens
// and tokens of other clients get the same 200, so the endpoint tells a
// caller nothing about tokens it does not hold.
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	form, client, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	raw := form.Get("token")
	if raw == "" {
		writeError(w, invalidRequest("The token parameter is missing."))
		return
	}
	if keygate.WellFormedToken(raw, accessTokenPrefix, refreshTokenPrefix) {
		now := s.now().UTC()
		_, grant, err := s.findTokenGrant(r.Context(), keygate.HashToken(raw))
		switch {
		case keygate.ErrorCode(err) == keygate.ENOTFOUND:
		case err != nil:
			s.log.Error("oauth: finding token to revoke failed", "err", err)
			writeError(w, &authError{code: "temporarily_unavailable", description: "Try again.", status: http.StatusServiceUnavailable})
			return
		case grant.ClientID == client.ID && grant.Active():
			if err := s.store.RevokeOAuthGrant(r.Context(), grant.ID, now); err != nil && keygate.ErrorCode(err) != keygate.ENOTFOUND {
				s.log.Error("oauth: revoking grant failed", "grant_id", grant.ID, "err", err)
				writeError(w, &authError{code: "temporarily_unavailable", description: "Try again.", status: http.StatusServiceUnavailable})
				return
			}
			s.log.Info("oauth: grant revoked by its client", "client_id", client.ID, "grant_id", grant.ID)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
