package keygate

// The verify API's wire types (POST /api/v1/verify on the admin listener).
// They are domain types so that package client, which calls the API,
// depends on this package and the standard library only.

// VerifyRequest is the body of POST /api/v1/verify.
type VerifyRequest struct {
	API    string `json:"api"`
	Token  string `json:"token"`
	Method string `json:"method"` // default GET
	Path   string `json:"path"`   // path and query, e.g. /v2/products?states=California
	IP     string `json:"ip"`     // the end client's address, for per-IP limits
	// MethodOverride holds the values of the end request's method
	// override headers (MethodOverrides): one naming another method than
	// Method is refused, as the gateway refuses it, since a framework
	// behind the caller would serve that method on a route checked for
	// this one.
	MethodOverride []string `json:"method_override,omitempty"`
}

// VerifyResponse is the answer: whether the request may pass, and if not,
// the exact status and body the API's preset answers.
type VerifyResponse struct {
	Valid     bool             `json:"valid"`
	Code      string           `json:"code,omitempty"`
	Status    int              `json:"status"`
	Body      string           `json:"body,omitempty"` // exact bytes to answer with
	Identity  *Identity        `json:"identity,omitempty"`
	RateLimit *VerifyRateLimit `json:"rate_limit,omitempty"`
}

// VerifyRateLimit mirrors the X-RateLimit-* headers.
type VerifyRateLimit struct {
	Limit      int   `json:"limit"`
	Remaining  int   `json:"remaining"`
	Reset      int64 `json:"reset"`
	RetryAfter int64 `json:"retry_after,omitempty"`
}
