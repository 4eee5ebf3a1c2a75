package dashboard

import (
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

// tokenRow is a token as the list shows it.
type tokenRow struct {
	*keygate.Token
	Expired bool
	// OldSecretWorks: the token was rotated and the secret it replaced is
	// still in its grace period.
	OldSecretWorks bool
}

func newTokenRow(t *keygate.Token, now time.Time) tokenRow {
	return tokenRow{Token: t, Expired: t.Expired(now), OldSecretWorks: t.PreviousHash != "" && t.AcceptsHash(t.PreviousHash, now)}
}

type tokensPage struct {
	frame
	Tokens   []tokenRow
	Limits   []manage.TokenLimit
	ManyAPIs bool
	// AllAtLimit: no API can take another token, so Create is disabled.
	AllAtLimit bool
}

func (h *Handler) orgPath(a *manage.Access, rest string) string {
	return "/orgs/" + url.PathEscape(a.Organization.Slug) + rest
}

func (h *Handler) organizationHome(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	redirect(w, r, h.orgPath(a, "/tokens"))
}

func (h *Handler) tokens(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	tokens, err := manage.ListTokens(r.Context(), h.d.Store, a.Organization)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	manage.MergeLastUsed(h.d.PendingUsage, tokens...)
	now := h.d.Now()
	p := tokensPage{frame: *f, ManyAPIs: len(h.d.APIs) > 1}
	p.Title, p.Section = "API Tokens", "tokens"
	for _, t := range tokens {
		p.Tokens = append(p.Tokens, newTokenRow(t, now))
	}
	p.Limits = manage.TokenLimits(h.d.APIs, a.Organization, tokens, now)
	p.AllAtLimit = len(p.Limits) > 0
	for _, l := range p.Limits {
		if !l.Reached() {
			p.AllAtLimit = false
		}
	}
	if r.URL.Query().Get("joined") == "1" {
		p.Notice = "Welcome to " + a.Organization.Name + "."
	}
	if id := r.URL.Query().Get("deleted"); id != "" {
		if t, err := h.d.Store.FindTokenByID(r.Context(), id); err == nil && t.OrganizationID == a.Organization.ID && t.RevokedAt != nil {
			p.Notice = "Token “" + t.Name + "” deleted. Requests using it are refused from now on."
		}
	}
	h.render(w, r, http.StatusOK, "tokens", p)
}

type expiryOption struct {
	Value   keygate.ExpiryChoice
	Label   string
	Note    string // "recommended", "not recommended"
	Expires *time.Time
	Checked bool
}

type newTokenPage struct {
	frame
	APIs     []*keygate.API
	API      *keygate.API
	Limit    manage.TokenLimit
	Expiries []expiryOption
	// Scopes are the API's scopes, all ticked until the person narrows
	// the token; TypedScopes when the API names none, so they are typed.
	Scopes      []scopeOption
	TypedScopes bool
	ScopesText  string // what was typed, when TypedScopes
	Name        string
	Environment string
	FormID      string
	Error       string
}

type scopeOption struct {
	Name    string
	Checked bool
}

// newToken shows the create form for one API, chosen with ?api= when the
// organization can use several.
func (h *Handler) newToken(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	api, err := h.chooseAPI(r.URL.Query().Get("api"))
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	p, err := h.newTokenForm(r, f, a, api)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "token_new", p)
}

// chooseAPI is the named API, or the first one when none is named.
func (h *Handler) chooseAPI(name string) (*keygate.API, error) {
	if name == "" && len(h.d.APIs) > 0 {
		return h.d.APIs[0], nil
	}
	return manage.FindAPI(h.d.APIs, name)
}

// newTokenForm builds the form with its defaults: 90 days, live, every
// scope ticked (narrowing a token is optional).
func (h *Handler) newTokenForm(r *http.Request, f *frame, a *manage.Access, api *keygate.API) (*newTokenPage, error) {
	tokens, err := h.d.Store.ListTokens(r.Context(), keygate.TokenFilter{OrganizationID: a.Organization.ID, API: api.Name})
	if err != nil {
		return nil, err
	}
	now := h.d.Now()
	p := &newTokenPage{frame: *f, APIs: h.d.APIs, API: api, Environment: keygate.EnvironmentLive, FormID: h.forms.newID(now)}
	p.Title, p.Section = "Create token", "tokens"
	p.Limit = manage.TokenLimits([]*keygate.API{api}, a.Organization, tokens, now)[0]
	for _, c := range manage.ExpiryChoices(api) {
		o := expiryOption{Value: c, Label: c.Label(), Checked: c == keygate.DefaultExpiry}
		o.Expires, _ = c.ExpiresAt(now)
		switch c {
		case keygate.DefaultExpiry:
			o.Note = "recommended"
		case keygate.ExpiryNever:
			o.Note = "not recommended"
		}
		p.Expiries = append(p.Expiries, o)
	}
	for _, s := range manage.APIScopes(api) {
		p.Scopes = append(p.Scopes, scopeOption{Name: s, Checked: true})
	}
	p.TypedScopes = len(p.Scopes) == 0
	return p, nil
}

// postedScopes reads the scopes the form asks for: nil when none were
// chosen (every scope of the API, see manage.TokenScopes). The form's
// checkboxes come with a "scopes_shown" marker, so unticking every box
// is an empty list, refused, rather than the default.
func postedScopes(r *http.Request) []string {
	var scopes []string
	for _, v := range r.PostForm["scopes"] {
		scopes = append(scopes, manage.SplitList(v)...)
	}
	if scopes == nil && r.PostFormValue("scopes_shown") != "" {
		return []string{}
	}
	return scopes
}

type tokenCreatedPage struct {
	frame
	Token  *keygate.Token
	Secret string
	API    *keygate.API
	// Rotated: the secret replaces the token's old one, which works until
	// Token.PreviousHashExpiresAt.
	Rotated bool
	// ListURL replaces the address after the page loads, so reloading shows
	// the list rather than posting the form again.
	ListURL string
}

// createToken answers the create form with the new token, shown this once.
// The secret is rendered into this response only; there is no redirect,
// because a redirect would need the secret kept somewhere to show it after.
func (h *Handler) createToken(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	api, err := h.chooseAPI(r.PostFormValue("api"))
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	p, err := h.newTokenForm(r, f, a, api)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p.Name = r.PostFormValue("name")
	p.Environment = r.PostFormValue("environment")
	expiry := keygate.ExpiryChoice(r.PostFormValue("expires_in"))
	for i := range p.Expiries {
		p.Expiries[i].Checked = p.Expiries[i].Value == expiry
	}
	scopes := postedScopes(r)
	if p.TypedScopes {
		p.ScopesText = r.PostFormValue("scopes")
	} else if scopes != nil {
		for i := range p.Scopes {
			p.Scopes[i].Checked = slices.Contains(scopes, p.Scopes[i].Name)
		}
	}

	formID := r.PostFormValue("form_id")
	if err := h.forms.use(formID, h.d.Now()); err != nil {
		status, msg, _ := formError(err)
		p.Error = msg
		h.render(w, r, status, "token_new", p)
		return
	}
	now := h.d.Now()
	tok, secret, err := h.tokenChanges().Create(r.Context(), api, a.Organization, keygate.TokenRequest{
		Name: p.Name, Scopes: scopes, Environment: p.Environment, Expiry: expiry, CreatedBy: f.User.ID,
	}, now)
	if err != nil {
		h.forms.release(formID)
		status, msg, ok := formError(err)
		if !ok {
			h.fail(w, r, err)
			return
		}
		p.Error = msg
		h.render(w, r, status, "token_new", p)
		return
	}
	h.notify(keygate.ChangeTokenCreated, tok.ID)
	h.d.Logger.InfoContext(r.Context(), "token created",
		"org", a.Organization.Slug, "api", api.Name, "token_id", tok.ID, "hint", tok.Hint, "user_id", f.User.ID)
	out := tokenCreatedPage{frame: *f, Token: tok, Secret: secret, API: api, ListURL: h.orgPath(a, "/tokens")}
	out.Title, out.Section = "Token created", "tokens"
	w.Header().Set("Referrer-Policy", "no-referrer")
	h.render(w, r, http.StatusCreated, "token_created", out)
}

type tokenPage struct {
	frame
	Token   tokenRow
	Usage   *usageView
	BaseURL string
}

func (h *Handler) token(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	tok, err := manage.FindToken(r.Context(), h.d.Store, a.Organization, r.PathValue("id"))
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	manage.MergeLastUsed(h.d.PendingUsage, tok)
	usage, err := h.usageView(r, a, tok.ID)
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	p := tokenPage{frame: *f, Token: newTokenRow(tok, h.d.Now()), Usage: usage}
	p.Title, p.Section = tok.Name, "tokens"
	h.render(w, r, http.StatusOK, "token", p)
}

func (h *Handler) confirmDeleteToken(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	tok, err := manage.FindToken(r.Context(), h.d.Store, a.Organization, r.PathValue("id"))
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	p := tokenPage{frame: *f, Token: newTokenRow(tok, h.d.Now())}
	p.Title, p.Section = "Delete token", "tokens"
	h.render(w, r, http.StatusOK, "token_delete", p)
}

func (h *Handler) deleteToken(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	tok, err := h.tokenChanges().Delete(r.Context(), a.Organization, r.PathValue("id"), h.d.Now())
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	h.notify(keygate.ChangeToken, tok.ID)
	h.d.Logger.InfoContext(r.Context(), "token deleted",
		"org", a.Organization.Slug, "api", tok.API, "token_id", tok.ID, "hint", tok.Hint, "user_id", f.User.ID)
	redirect(w, r, h.orgPath(a, "/tokens?deleted="+url.QueryEscape(tok.ID)))
}

type graceOption struct {
	Value   keygate.RotationGrace
	Label   string
	Checked bool
}

type rotateTokenPage struct {
	frame
	Token  tokenRow
	Graces []graceOption
	FormID string
	Error  string
}

func (h *Handler) rotateTokenForm(f *frame, tok *keygate.Token, chosen keygate.RotationGrace) rotateTokenPage {
	now := h.d.Now()
	p := rotateTokenPage{frame: *f, Token: newTokenRow(tok, now), FormID: h.forms.newID(now)}
	p.Title, p.Section = "Rotate token", "tokens"
	for _, g := range keygate.RotationGraces {
		p.Graces = append(p.Graces, graceOption{Value: g, Label: g.Label(), Checked: g == chosen})
	}
	return p
}

// confirmRotateToken asks how long the old secret should keep working;
// 24 hours is preselected, long enough to redeploy most applications.
func (h *Handler) confirmRotateToken(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	tok, err := manage.FindToken(r.Context(), h.d.Store, a.Organization, r.PathValue("id"))
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	h.render(w, r, http.StatusOK, "token_rotate", h.rotateTokenForm(f, tok, keygate.Grace24Hours))
}

// rotateToken answers the confirmation with the new secret, shown this
// once, like createToken. A form is used once, so reloading the answer
// cannot rotate the token again (which would end the old secret's grace).
func (h *Handler) rotateToken(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	tok, err := manage.FindToken(r.Context(), h.d.Store, a.Organization, r.PathValue("id"))
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	grace := keygate.RotationGrace(r.PostFormValue("grace"))
	p := h.rotateTokenForm(f, tok, grace)
	formID := r.PostFormValue("form_id")
	if err := h.forms.use(formID, h.d.Now()); err != nil {
		status, msg, _ := formError(err)
		p.Error = msg
		h.render(w, r, status, "token_rotate", p)
		return
	}
	rotated, secret, err := h.tokenChanges().Rotate(r.Context(), h.d.APIs, a.Organization, tok.ID, grace, h.d.Now())
	if err != nil {
		h.forms.release(formID)
		status, msg, ok := formError(err)
		if !ok {
			h.showError(w, r, f, err)
			return
		}
		p.Error = msg
		h.render(w, r, status, "token_rotate", p)
		return
	}
	h.notify(keygate.ChangeToken, rotated.ID)
	h.d.Logger.InfoContext(r.Context(), "token rotated",
		"org", a.Organization.Slug, "api", rotated.API, "token_id", rotated.ID, "hint", rotated.Hint, "grace", string(grace), "user_id", f.User.ID)
	api, _ := manage.FindAPI(h.d.APIs, rotated.API)
	out := tokenCreatedPage{frame: *f, Token: rotated, Secret: secret, API: api, Rotated: true, ListURL: h.orgPath(a, "/tokens")}
	out.Title, out.Section = "Token rotated", "tokens"
	w.Header().Set("Referrer-Policy", "no-referrer")
	h.render(w, r, http.StatusOK, "token_created", out)
}
