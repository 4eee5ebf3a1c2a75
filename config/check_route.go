package config

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/keygate/keygate"
)

// httpMethods are the methods a route may list. CONNECT and TRACE are left
// out on purpose: a reverse proxy has no business forwarding them.
var httpMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// queryParamRe is what an entitlement's query parameter name may be.
var queryParamRe = regexp.MustCompile(`^[A-Za-z0-9_.\-\[\]]+$`)

// defaultRateLimit is an API's limit for public or token routes: the
// preset's unless the file sets one, or turns it off with none or null.
func (c *checker) defaultRateLimit(path string, s rateLimitSetting, presetDefault *keygate.RateLimit, access keygate.Access) *keygate.RateLimit {
	switch {
	case s.none || c.isNull(path):
		return nil
	case !s.set:
		return cloneRateLimit(presetDefault)
	}
	return c.rateLimit(path, s, access)
}

func (c *checker) rateLimit(path string, s rateLimitSetting, access keygate.Access) *keygate.RateLimit {
	defKey := keygate.LimitByToken
	if access == keygate.AccessPublic {
		defKey = keygate.LimitByIP
	}
	rl := &keygate.RateLimit{
		Key:    c.oneOf(path+".key", s.Key, defKey, keygate.LimitByIP, keygate.LimitByToken, keygate.LimitByOrganization),
		Limit:  s.Limit,
		Period: c.duration(path+".period", s.Period, DefaultRateLimitPeriod, false),
	}
	if access == keygate.AccessPublic && rl.Key != keygate.LimitByIP {
		c.fail(path+".key", `must be "ip" for public routes and failed authentication, which have no token, got %q`, rl.Key)
	}
	if !c.written(path + ".limit") {
		c.fail(path+".limit", "is required: how many requests each %s may make per period", rl.Key)
	} else if s.Limit <= 0 {
		c.fail(path+".limit", "must be greater than 0, got %d", s.Limit)
	}
	if len(s.Plans) > 0 && access == keygate.AccessPublic {
		c.fail(path+".plans", "only applies to token routes; public requests have no plan")
	}
	for _, plan := range sortedKeys(s.Plans) {
		pp := path + ".plans." + plan
		if !wordRe.MatchString(plan) {
			c.fail(pp, "must be a plan name without spaces, commas or quotes, got %q", plan)
		} else if n := s.Plans[plan]; n <= 0 {
			c.fail(pp, "must be greater than 0, got %d", n)
		}
	}
	if len(s.Plans) > 0 {
		rl.PlanLimits = make(map[string]int, len(s.Plans))
		for plan, n := range s.Plans {
			rl.PlanLimits[plan] = n
		}
	}
	return rl
}

func (c *checker) routes(apiPath string, list []fileRoute, apiScopes []string) []keygate.Route {
	if len(list) == 0 {
		c.fail(apiPath+".routes", "at least one route is required")
	}
	routes := make([]keygate.Route, 0, len(list))
	var patterns []routePattern
	for i := range list {
		path := fmt.Sprintf("%s.routes[%d]", apiPath, i)
		r := c.route(path, &list[i], apiScopes)
		patterns = c.checkConflicts(path, r, patterns)
		routes = append(routes, r)
	}
	return routes
}

func (c *checker) route(path string, f *fileRoute, apiScopes []string) keygate.Route {
	r := keygate.Route{
		Access:  keygate.Access(c.oneOf(path+".access", f.Access, string(keygate.AccessToken), string(keygate.AccessPublic), string(keygate.AccessToken))),
		Methods: c.methods(path+".methods", f.Methods),
		Path:    c.routePath(path+".path", f.Path),
		Scopes:  c.words(path+".scopes", f.Scopes),
		Plans:   c.words(path+".plans", f.Plans),
	}
	if len(apiScopes) > 0 {
		for i, s := range r.Scopes {
			if !slices.Contains(apiScopes, s) {
				c.fail(fmt.Sprintf("%s.scopes[%d]", path, i), "%q is not one of the API's scopes (%s)", s, strings.Join(apiScopes, ", "))
			}
		}
	}
	r.Entitlements = c.entitlements(path+".entitlements", f.Entitlements)
	if r.Access == keygate.AccessPublic {
		// A public request has no token, so no organization to check.
		for _, rule := range []struct {
			key string
			set bool
		}{{"scopes", len(f.Scopes) > 0}, {"plans", len(f.Plans) > 0}, {"entitlements", len(f.Entitlements) > 0}} {
			if rule.set {
				c.fail(path+"."+rule.key, "only applies to token routes; this route is public")
			}
		}
	}
	if f.RateLimit != nil {
		if f.RateLimit.none {
			c.fail(path+".rate_limit", "cannot be none; leave rate_limit out to use the API's rate_limits.%s, or turn that off with none", r.Access)
		} else {
			r.RateLimit = c.rateLimit(path+".rate_limit", *f.RateLimit, r.Access)
		}
	}
	return r
}

func (c *checker) methods(path string, list []string) []string {
	if len(list) == 0 {
		c.fail(path, "at least one method is required, e.g. [GET]")
	}
	out := make([]string, 0, len(list))
	for i, m := range list {
		mp := fmt.Sprintf("%s[%d]", path, i)
		up := strings.ToUpper(m)
		switch {
		case !slices.Contains(httpMethods, up):
			c.fail(mp, "must be an HTTP method (%s), got %q", strings.Join(httpMethods, ", "), m)
		case slices.Contains(out, up):
			c.fail(mp, "%q is listed twice", up)
		default:
			out = append(out, up)
		}
	}
	return out
}

// routePath checks the path as net/http's ServeMux will see it, by
// registering it on a throwaway mux: what it refuses, keygate refuses
// at start rather than panicking later.
func (c *checker) routePath(path, p string) string {
	switch {
	case p == "":
		c.fail(path, `is required, e.g. "/v2/products"`)
	case !strings.HasPrefix(p, "/"):
		c.fail(path, `must start with "/", got %q`, p)
	case strings.ContainsAny(p, " \t\r\n"):
		c.fail(path, "must not contain spaces, got %q", p)
	default:
		// With a method, as the gateway registers it: ServeMux refuses some
		// paths (such as "/a//b") only in method patterns.
		reason := muxRefusal(http.NewServeMux(), http.MethodGet+" "+p)
		if reason == "" {
			return p
		}
		c.fail(path, "is not a valid path pattern (%s), got %q", reason, p)
	}
	return "" // already refused: kept out of the conflict check
}

var muxOffsetRe = regexp.MustCompile(`^parsing ".*": at offset \d+: `)

// muxRefusal registers pattern on mux and returns why the mux refused it,
// or "" when it took it.
func muxRefusal(mux *http.ServeMux, pattern string) (reason string) {
	defer func() {
		if v := recover(); v != nil {
			reason = muxOffsetRe.ReplaceAllString(fmt.Sprint(v), "")
		}
	}()
	mux.HandleFunc(pattern, func(http.ResponseWriter, *http.Request) {})
	return ""
}

type routePattern struct {
	path    string // setting path of the route
	pattern string // "GET /v2/products"
}

// checkConflicts refuses a route that ServeMux could not tell apart from an
// earlier one: the same method and path, or two patterns that match some
// of the same requests with neither more specific.
func (c *checker) checkConflicts(path string, r keygate.Route, earlier []routePattern) []routePattern {
	if r.Path == "" {
		return earlier
	}
	for _, m := range r.Methods {
		pattern := m + " " + r.Path
		for _, e := range earlier {
			mux := http.NewServeMux()
			muxRefusal(mux, e.pattern)
			if muxRefusal(mux, pattern) != "" {
				c.fail(path, "%q conflicts with %q of %s", pattern, e.pattern, e.path)
				break
			}
		}
		earlier = append(earlier, routePattern{path: path, pattern: pattern})
	}
	return earlier
}

func (c *checker) entitlements(path string, m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	kinds := []string{keygate.EntitlementStates, keygate.EntitlementBrands, keygate.EntitlementDispensaries}
	out := make(map[string]string, len(m))
	for _, kind := range sortedKeys(m) {
		param := m[kind]
		kp := path + "." + kind
		switch {
		case !slices.Contains(kinds, kind):
			c.fail(kp, "must be an entitlement kind, %s, got %q", orList(kinds), kind)
		case !queryParamRe.MatchString(param):
			c.fail(kp, "must be the name of the query parameter that carries %s, got %q", kind, param)
		default:
			out[kind] = param
		}
	}
	return out
}
