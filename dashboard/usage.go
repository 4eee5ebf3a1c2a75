package dashboard

import (
	"html/template"
	"net/http"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

// usageView is a period's usage, its chart, and links to the other periods.
type usageView struct {
	*manage.Usage
	Chart   template.HTML
	Periods []periodLink
}

type periodLink struct {
	Label   string
	Query   string
	Current bool
}

// usageView reads the period asked for in ?period= for the organization, or
// one token when tokenID is set.
func (h *Handler) usageView(r *http.Request, a *manage.Access, tokenID string) (*usageView, error) {
	period, err := manage.ParseUsagePeriod(r.URL.Query().Get("period"))
	if err != nil {
		return nil, err
	}
	u, err := manage.ReadUsage(r.Context(), h.d.Store, a.Organization, tokenID, period, h.d.Now())
	if err != nil {
		return nil, err
	}
	v := &usageView{Usage: u, Chart: usageChart(u)}
	for _, p := range []manage.UsagePeriod{manage.UsageDay, manage.UsageWeek} {
		v.Periods = append(v.Periods, periodLink{Label: p.Label(), Query: "?period=" + string(p), Current: p == period})
	}
	return v, nil
}

type usagePage struct {
	frame
	Usage  *usageView
	Tokens []tokenUsage
}

type tokenUsage struct {
	Token *keygate.Token // nil for OAuth traffic
	keygate.UsageCount
}

func (h *Handler) usage(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	v, err := h.usageView(r, a, "")
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	tokens, err := h.d.Store.ListTokens(r.Context(), keygate.TokenFilter{OrganizationID: a.Organization.ID, IncludeRevoked: true})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := usagePage{frame: *f, Usage: v}
	p.Title, p.Section = "Usage", "usage"
	for _, t := range tokens {
		if c, ok := v.ByToken[t.ID]; ok {
			p.Tokens = append(p.Tokens, tokenUsage{Token: t, UsageCount: c})
		}
	}
	if c, ok := v.ByToken[""]; ok {
		p.Tokens = append(p.Tokens, tokenUsage{UsageCount: c})
	}
	h.render(w, r, http.StatusOK, "usage", p)
}
