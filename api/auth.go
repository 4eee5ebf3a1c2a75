package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/session"
)

// authenticate finds who is calling. An Authorization header means an admin
// key, and a bad one is refused even when a session cookie is also present,
// so a script never silently acts as whoever is logged in to the browser.
// A session must carry its CSRF token in the X-CSRF-Token header on every
// request that changes something.
//
// The admin key or session is looked up under its own deadline
// (Deps.StoreTimeout): a database that stops answering gets the caller a
// 503 within it instead of a request that hangs.
func (h *Handler) authenticate(r *http.Request) (manage.Caller, error) {
	ctx, cancel := keygate.StoreContext(r.Context(), h.d.StoreTimeout)
	defer cancel()
	c, err := h.authenticateWithin(r.WithContext(ctx))
	if keygate.StoreTimedOut(r.Context(), err) {
		h.d.Logger.Warn("api: the database did not answer an authentication lookup in time", "timeout", h.storeTimeout())
		return manage.Caller{}, errStoreTimeout
	}
	return c, err
}

var errStoreTimeout = keygate.Errorf(keygate.EUNAVAILABLE, "The database did not answer in time; try again.")

func (h *Handler) storeTimeout() time.Duration {
	if h.d.StoreTimeout > 0 {
		return h.d.StoreTimeout
	}
	return keygate.DefaultStoreTimeout
}

func (h *Handler) authenticateWithin(r *http.Request) (manage.Caller, error) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, secret, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return manage.Caller{}, keygate.Errorf(keygate.EUNAUTHORIZED, "Send an admin key as \"Authorization: Bearer kgadm_…\".")
		}
		key, err := manage.AuthenticateAdminKey(r.Context(), h.d.Store, strings.TrimSpace(secret))
		if err != nil {
			return manage.Caller{}, err
		}
		return manage.Caller{AdminKey: key}, nil
	}
	if h.d.Sessions == nil {
		return manage.Caller{}, keygate.Errorf(keygate.EUNAUTHORIZED, "Send an admin key as \"Authorization: Bearer kgadm_…\".")
	}
	s, user, err := h.d.Sessions.Current(r)
	if keygate.ErrorCode(err) == keygate.EUNAUTHORIZED {
		return manage.Caller{}, keygate.Errorf(keygate.EUNAUTHORIZED, "Log in to the dashboard or send an admin key as \"Authorization: Bearer kgadm_…\".")
	} else if err != nil {
		return manage.Caller{}, err
	}
	if changes(r) && (r.Header.Get(session.CSRFHeader) == "" || !session.ValidCSRF(r, s)) {
		return manage.Caller{}, keygate.Errorf(keygate.EFORBIDDEN, "Missing or wrong CSRF token: send the csrf_token from GET /api/v1/me in the %s header.", session.CSRFHeader)
	}
	return manage.Caller{User: user}, nil
}

// changes reports whether the request may change state.
func changes(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}
