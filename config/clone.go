package config

import (
	"maps"
	"slices"

	"github.com/keygate/keygate"
)

// cloneAPI copies an API deeply, so what one caller changes (a test
// tightening a limit, the demo moving a listener) never reaches another.
func cloneAPI(a *keygate.API) *keygate.API {
	out := *a
	if a.Preset != nil {
		p := *a.Preset
		p.PublicRateLimit = cloneRateLimit(p.PublicRateLimit)
		p.TokenRateLimit = cloneRateLimit(p.TokenRateLimit)
		p.FailedAuthRateLimit = cloneRateLimit(p.FailedAuthRateLimit)
		p.Responses = maps.Clone(p.Responses)
		out.Preset = &p
	}
	out.Tokens.Scopes = slices.Clone(a.Tokens.Scopes)
	out.PublicRateLimit = cloneRateLimit(a.PublicRateLimit)
	out.TokenRateLimit = cloneRateLimit(a.TokenRateLimit)
	out.FailedAuthRateLimit = cloneRateLimit(a.FailedAuthRateLimit)
	out.Routes = make([]keygate.Route, len(a.Routes))
	for i, r := range a.Routes {
		r.Methods = slices.Clone(r.Methods)
		r.Scopes = slices.Clone(r.Scopes)
		r.Plans = slices.Clone(r.Plans)
		r.Entitlements = maps.Clone(r.Entitlements)
		r.RateLimit = cloneRateLimit(r.RateLimit)
		out.Routes[i] = r
	}
	if a.MCP != nil {
		m := *a.MCP
		m.Scopes = slices.Clone(a.MCP.Scopes)
		out.MCP = &m
	}
	return &out
}

func cloneRateLimit(r *keygate.RateLimit) *keygate.RateLimit {
	if r == nil {
		return nil
	}
	out := *r
	out.PlanLimits = maps.Clone(r.PlanLimits)
	return &out
}
