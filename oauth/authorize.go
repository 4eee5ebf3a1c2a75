package oauth

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate"
)

// authRequest is a validated authorization request.
type authRequest struct {
	client *keygate.OAuthClient
	// redirectURI is where the answer goes; redirectParam is the
	// redirect_uri parameter as sent ("" when omitted), which the token
	// request must repeat.
	redirectURI   string
	redirectParam string
	state         string
	challenge     string
	res           *resource
	scopes        []string
	offline       bool
	// query is the request as received, carried by the login and consent
	// forms so each step validates it again instead of trusting a copy.
	query string
}

// pageProblem is an authorization request keygate must not redirect back
// for, because the client or its redirect URI cannot be trusted (RFC 6749
// §4.1.2.1): the user sees a page instead.
type pageProblem struct {
	status  int
	message string
}

// parseAuthorization validates an authorization request. A *pageProblem
// means show a page; an *authError means redirect it to the client with
// the returned request's redirect URI and state.
func (s *Server) parseAuthorization(ctx context.Context, rawQuery string) (*authRequest, *authError, *pageProblem) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, nil, badPage("The authorization request is malformed.")
	}
	for _, name := range []string{"client_id", "redirect_uri"} {
		if len(q[name]) > 1 {
			return nil, nil, badPage("The authorization request repeats " + name + ".")
		}
	}
	req := &authRequest{query: rawQuery, redirectParam: q.Get("redirect_uri")}
	req.client, err = s.findClient(ctx, q.Get("client_id"))
	if err != nil {
		if code := keygate.ErrorCode(err); code == keygate.ENOTFOUND || code == keygate.EINVALID {
			return nil, nil, badPage(keygate.ErrorMessage(err))
		}
		s.log.Error("oauth: finding client failed", "client_id", q.Get("client_id"), "err", err)
		return nil, nil, &pageProblem{status: http.StatusInternalServerError, message: "keygate could not load the application; try again."}
	}
	switch {
	case req.redirectParam != "":
		if !matchRedirectURI(req.client.RedirectURIs, req.redirectParam) {
			return nil, nil, badPage("The redirect_uri is not one the application registered, so keygate will not send you there.")
		}
		req.redirectURI = req.redirectParam
	case len(req.client.RedirectURIs) == 1:
		req.redirectURI = req.client.RedirectURIs[0]
	default:
		return nil, nil, badPage("The authorization request needs a redirect_uri: the application registered several.")
	}

	// From here on the redirect URI is trusted: problems go back to the client.
	req.state = q.Get("state")
	for _, name := range []string{"state", "response_type", "code_challenge", "code_challenge_method", "resource", "scope"} {
		if len(q[name]) > 1 {
			return req, invalidRequest("The authorization request repeats " + name + "."), nil
		}
	}
	if q.Has("request") || q.Has("request_uri") {
		return req, &authError{code: "request_not_supported", description: "Request objects are not supported."}, nil
	}
	if rt := q.Get("response_type"); rt != "code" {
		return req, &authError{code: "unsupported_response_type", description: "Only response_type=code is supported."}, nil
	}
	if !req.client.AllowsGrant(keygate.OAuthGrantAuthorizationCode) {
		return req, &authError{code: "unauthorized_client", description: "This client may not use the authorization code grant."}, nil
	}
	req.challenge = q.Get("code_challenge")
	if req.challenge == "" {
		return req, invalidRequest("PKCE is required: send a code_challenge with code_challenge_method=S256."), nil
	}
	if q.Get("code_challenge_method") != "S256" {
		return req, invalidRequest("Only the S256 code_challenge_method is supported."), nil
	}
	if !validChallenge(req.challenge) {
		return req, invalidRequest("The code_challenge is not a base64url SHA-256 digest."), nil
	}
	res, aerr := s.findResource(q.Get("resource"))
	if aerr != nil {
		return req, aerr, nil
	}
	req.res = res
	req.scopes, req.offline = res.grantedScopes(q.Get("scope"))
	req.offline = req.offline || req.client.AllowsGrant(keygate.OAuthGrantRefreshToken)
	return req, nil, nil
}

func badPage(message string) *pageProblem {
	return &pageProblem{status: http.StatusBadRequest, message: message}
}

// serveAuthorize is the authorization endpoint: it validates the request,
// asks for a login when there is no session, then shows the consent page.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	req, aerr, problem := s.parseAuthorization(r.Context(), r.URL.RawQuery)
	switch {
	case problem != nil:
		s.renderProblem(w, problem)
		return
	case aerr != nil:
		s.redirectToClient(w, r, req, errorParams(aerr), http.StatusFound)
		return
	}
	sess, user, err := s.sessions.Current(r)
	if err != nil {
		s.askLogin(w, r, req, "")
		return
	}
	s.renderConsent(w, r, req, sess, user)
}

// serveDecision receives the consent form: deny sends access_denied back,
// approve issues an authorization code for the chosen organization.
func (s *Server) serveDecision(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.renderProblem(w, badPage("The form could not be read."))
		return
	}
	req, aerr, problem := s.parseAuthorization(r.Context(), r.PostForm.Get("request"))
	switch {
	case problem != nil:
		s.renderProblem(w, problem)
		return
	case aerr != nil:
		s.redirectToClient(w, r, req, errorParams(aerr), http.StatusSeeOther)
		return
	}
	sess, user, err := s.sessions.Current(r)
	if err != nil {
		s.askLogin(w, r, req, "Your session ended. Log in again to continue.")
		return
	}
	if !validSessionCSRF(r, sess) {
		s.renderProblem(w, &pageProblem{status: http.StatusForbidden, message: "This form has expired. Start again from your application."})
		return
	}
	if r.PostForm.Get("decision") != "approve" {
		s.log.Info("oauth: access denied by user", "client_id", req.client.ID, "user_id", user.ID)
		s.redirectToClient(w, r, req, errorParams(&authError{code: "access_denied", description: "The user denied access."}), http.StatusSeeOther)
		return
	}
	org, err := s.memberOrganization(r.Context(), user, r.PostForm.Get("organization"))
	if err != nil {
		if keygate.ErrorCode(err) == keygate.EFORBIDDEN {
			s.renderProblem(w, &pageProblem{status: http.StatusForbidden, message: keygate.ErrorMessage(err)})
			return
		}
		s.log.Error("oauth: loading organization failed", "user_id", user.ID, "err", err)
		s.renderProblem(w, &pageProblem{status: http.StatusInternalServerError, message: "keygate could not load the organization; try again."})
		return
	}
	code, err := s.issueCode(r.Context(), req, user, org)
	if err != nil {
		s.log.Error("oauth: storing authorization code failed", "client_id", req.client.ID, "err", err)
		s.redirectToClient(w, r, req, errorParams(&authError{code: "server_error", description: "keygate could not issue a code; try again."}), http.StatusSeeOther)
		return
	}
	s.log.Info("oauth: access approved", "client_id", req.client.ID, "user_id", user.ID, "org_id", org.ID, "resource", req.res.url)
	s.redirectToClient(w, r, req, url.Values{"code": {code}}, http.StatusSeeOther)
}

// memberOrganization returns the organization the user chose, if the user
// is a member of it.
func (s *Server) memberOrganization(ctx context.Context, user *keygate.User, orgID string) (*keygate.Organization, error) {
	if orgID == "" {
		return nil, keygate.Errorf(keygate.EFORBIDDEN, "Choose an organization.")
	}
	ms, err := s.store.ListMemberships(ctx, keygate.MembershipFilter{OrganizationID: orgID, UserID: user.ID})
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, keygate.Errorf(keygate.EFORBIDDEN, "You are not a member of that organization.")
	}
	return s.store.FindOrganizationByID(ctx, orgID)
}

// issueCode stores a new authorization code and returns it.
func (s *Server) issueCode(ctx context.Context, req *authRequest, user *keygate.User, org *keygate.Organization) (string, error) {
	code := keygate.GenerateTokenSecret(codePrefix)
	now := s.now().UTC()
	err := s.store.CreateOAuthCode(ctx, &keygate.OAuthCode{
		Hash:           keygate.HashToken(code),
		GrantID:        keygate.NewID("ogr"),
		ClientID:       req.client.ID,
		UserID:         user.ID,
		OrganizationID: org.ID,
		RedirectURI:    req.redirectParam,
		CodeChallenge:  req.challenge,
		Resource:       req.res.url,
		Scopes:         req.scopes,
		Offline:        req.offline,
		CreatedAt:      now,
		ExpiresAt:      now.Add(s.codeTTL),
	})
	return code, err
}

func errorParams(e *authError) url.Values {
	return url.Values{"error": {e.code}, "error_description": {e.description}}
}

// redirectToClient sends the authorization response to the client's
// redirect URI, keeping its own query, with state and, per RFC 9207, the
// issuer, so a client talking to several servers knows who answered.
func (s *Server) redirectToClient(w http.ResponseWriter, r *http.Request, req *authRequest, params url.Values, status int) {
	u, _ := url.Parse(req.redirectURI)
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if req.state != "" {
		q.Set("state", req.state)
	}
	q.Set("iss", s.issuer)
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), status)
}

// askLogin sends a user without a session to log in, then back here.
func (s *Server) askLogin(w http.ResponseWriter, r *http.Request, req *authRequest, message string) {
	if s.loginURL != "" {
		next := s.issuerPath() + PathAuthorize + "?" + req.query
		target := s.loginURL + "?" + url.Values{"next": {next}}.Encode()
		if strings.Contains(s.loginURL, "?") {
			target = s.loginURL + "&" + url.Values{"next": {next}}.Encode()
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	s.renderLogin(w, req.query, "", message, http.StatusOK)
}
