package demo

import (
	"cmp"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/keygate/keygate"
)

// Pagination of the menus API.
const (
	DefaultPerPage = 25
	MaxPerPage     = 100
)

// MenusAPI returns the demo menus API, shaped like CannMenus: every route
// needs an identity, and every answer covers only the products within the
// organization's entitlements, narrowed further by the query's `states`,
// `brands` and `dispensaries` (each comma-separated and/or repeated).
//
//	GET /v2/products      paginated products
//	GET /v2/brands        brands with their product counts
//	GET /v2/dispensaries  dispensaries with state, city and product counts
//	GET /v2/analytics     product counts and average prices (plan pro)
func MenusAPI(identity IdentityReader) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /v2/products", requireIdentity(identity, listProducts))
	mux.Handle("GET /v2/brands", requireIdentity(identity, listBrands))
	mux.Handle("GET /v2/dispensaries", requireIdentity(identity, listDispensaries))
	mux.Handle("GET /v2/analytics", requireIdentity(identity, showAnalytics))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeRaw(w, http.StatusNotFound, `{"detail": "Not Found"}`)
	})
	return mux
}

// page is one page of a list, in the menus API's envelope.
type page[T any] struct {
	Data       []T `json:"data"`
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Total      int `json:"total"`
	TotalPages int `json:"total_pages"`
}

// paginate cuts items to the requested page. A page past the end is empty
// but still reports the total, so clients know where the list stops.
func paginate[T any](items []T, number, perPage int) page[T] {
	total := len(items)
	start := min((number-1)*perPage, total)
	end := min(start+perPage, total)
	return page[T]{
		Data:       append(make([]T, 0, end-start), items[start:end]...),
		Page:       number,
		PerPage:    perPage,
		Total:      total,
		TotalPages: (total + perPage - 1) / perPage,
	}
}

// fieldError is one FastAPI-style validation error, the shape CannMenus
// answers 422 with.
type fieldError struct {
	Loc  []string `json:"loc"`
	Msg  string   `json:"msg"`
	Type string   `json:"type"`
}

// pageParams reads `page` and `per_page`, answering 422 itself when they
// are not integers in range.
func pageParams(w http.ResponseWriter, q url.Values) (number, perPage int, ok bool) {
	var errs []fieldError
	number, errs = intParam(q, "page", 1, 1, math.MaxInt32, errs)
	perPage, errs = intParam(q, "per_page", DefaultPerPage, 1, MaxPerPage, errs)
	if len(errs) > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": errs})
		return 0, 0, false
	}
	return number, perPage, true
}

func intParam(q url.Values, name string, def, lo, hi int, errs []fieldError) (int, []fieldError) {
	raw := strings.TrimSpace(q.Get(name))
	if raw == "" {
		return def, errs
	}
	n, err := strconv.Atoi(raw)
	loc := []string{"query", name}
	switch {
	case err != nil:
		return def, append(errs, fieldError{loc, "Input should be a valid integer, unable to parse string as an integer", "int_parsing"})
	case n < lo:
		return def, append(errs, fieldError{loc, "Input should be greater than or equal to " + strconv.Itoa(lo), "greater_than_equal"})
	case n > hi:
		return def, append(errs, fieldError{loc, "Input should be less than or equal to " + strconv.Itoa(hi), "less_than_equal"})
	}
	return n, errs
}

// selection is the products a request may see: the organization's
// entitlements and the query's filters, both applied. A nil set of a kind
// does not restrict that kind.
type selection struct {
	entitled, requested map[string]map[string]bool // kind → lower-cased values
}

func newSelection(id *keygate.Identity, q url.Values) selection {
	s := selection{entitled: map[string]map[string]bool{}, requested: map[string]map[string]bool{}}
	for _, kind := range []string{keygate.EntitlementStates, keygate.EntitlementBrands, keygate.EntitlementDispensaries} {
		s.entitled[kind] = valueSet(id.Entitlements.Values(kind))
		s.requested[kind] = valueSet(listParam(q, kind))
	}
	return s
}

// listParam reads a filter that may be repeated and/or comma-separated:
// `states=California,Oregon&states=Colorado`.
func listParam(q url.Values, name string) []string {
	var out []string
	for _, v := range q[name] {
		for part := range strings.SplitSeq(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

func valueSet(values []string) map[string]bool {
	if len(values) == 0 {
		return nil
	}
	set := make(map[string]bool, len(values))
	for _, v := range values {
		set[strings.ToLower(strings.TrimSpace(v))] = true
	}
	return set
}

func (s selection) admits(kind, value string) bool {
	v := strings.ToLower(value)
	for _, set := range []map[string]bool{s.entitled[kind], s.requested[kind]} {
		if set != nil && !set[v] {
			return false
		}
	}
	return true
}

func (s selection) includes(p *Product) bool {
	return s.admits(keygate.EntitlementStates, p.State) &&
		s.admits(keygate.EntitlementBrands, p.Brand) &&
		s.admits(keygate.EntitlementDispensaries, p.Dispensary)
}

// products returns the selected products in menu order.
func (s selection) products() []*Product {
	var out []*Product
	for i := range products {
		if s.includes(&products[i]) {
			out = append(out, &products[i])
		}
	}
	return out
}

func listProducts(w http.ResponseWriter, r *http.Request, id *keygate.Identity) {
	q := r.URL.Query()
	number, perPage, ok := pageParams(w, q)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, paginate(newSelection(id, q).products(), number, perPage))
}

// BrandSummary is a brand as /v2/brands lists it: only what the caller may
// see is counted.
type BrandSummary struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	States       []string `json:"states"`
	Categories   []string `json:"categories"`
	ProductCount int      `json:"product_count"`
	AveragePrice float64  `json:"average_price"`
}

func listBrands(w http.ResponseWriter, r *http.Request, id *keygate.Identity) {
	q := r.URL.Query()
	number, perPage, ok := pageParams(w, q)
	if !ok {
		return
	}
	byID := map[string]*BrandSummary{}
	totals := map[string]float64{}
	for _, p := range newSelection(id, q).products() {
		b := byID[p.BrandID]
		if b == nil {
			b = &BrandSummary{ID: p.BrandID, Name: p.Brand, States: []string{}, Categories: []string{}}
			byID[p.BrandID] = b
		}
		b.ProductCount++
		totals[p.BrandID] += p.Price
		b.States = appendNew(b.States, p.State)
		b.Categories = appendNew(b.Categories, p.Category)
	}
	list := make([]BrandSummary, 0, len(byID))
	for _, b := range byID {
		b.AveragePrice = roundCents(totals[b.ID] / float64(b.ProductCount))
		slices.Sort(b.States)
		slices.Sort(b.Categories)
		list = append(list, *b)
	}
	slices.SortFunc(list, func(a, b BrandSummary) int { return cmp.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, paginate(list, number, perPage))
}

// DispensarySummary is a dispensary as /v2/dispensaries lists it.
type DispensarySummary struct {
	Dispensary
	ProductCount int `json:"product_count"`
}

func listDispensaries(w http.ResponseWriter, r *http.Request, id *keygate.Identity) {
	q := r.URL.Query()
	number, perPage, ok := pageParams(w, q)
	if !ok {
		return
	}
	counts := map[string]int{}
	for _, p := range newSelection(id, q).products() {
		counts[p.DispensaryID]++
	}
	list := make([]DispensarySummary, 0, len(counts))
	for _, d := range dispensaries {
		if n := counts[d.ID]; n > 0 {
			list = append(list, DispensarySummary{Dispensary: d, ProductCount: n})
		}
	}
	slices.SortFunc(list, func(a, b DispensarySummary) int {
		return cmp.Or(cmp.Compare(a.State, b.State), cmp.Compare(a.City, b.City), cmp.Compare(a.Name, b.Name))
	})
	writeJSON(w, http.StatusOK, paginate(list, number, perPage))
}

// Aggregate is the product count and average price of one group.
type Aggregate struct {
	Name         string  `json:"name"`
	ProductCount int     `json:"product_count"`
	AveragePrice float64 `json:"average_price"`
}

// Analytics is what /v2/analytics answers, within the entitlements and
// filters of the request.
type Analytics struct {
	TotalProducts int         `json:"total_products"`
	AveragePrice  float64     `json:"average_price"`
	States        []Aggregate `json:"states"`
	Brands        []Aggregate `json:"brands"`
	Categories    []Aggregate `json:"categories"`
}

func showAnalytics(w http.ResponseWriter, r *http.Request, id *keygate.Identity) {
	selected := newSelection(id, r.URL.Query()).products()
	a := Analytics{
		TotalProducts: len(selected),
		States:        aggregate(selected, func(p *Product) string { return p.State }),
		Brands:        aggregate(selected, func(p *Product) string { return p.Brand }),
		Categories:    aggregate(selected, func(p *Product) string { return p.Category }),
	}
	var sum float64
	for _, p := range selected {
		sum += p.Price
	}
	if len(selected) > 0 {
		a.AveragePrice = roundCents(sum / float64(len(selected)))
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": a})
}

// aggregate groups products by key, sorted by name.
func aggregate(ps []*Product, key func(*Product) string) []Aggregate {
	byName := map[string]*Aggregate{}
	sums := map[string]float64{}
	for _, p := range ps {
		k := key(p)
		if byName[k] == nil {
			byName[k] = &Aggregate{Name: k}
		}
		byName[k].ProductCount++
		sums[k] += p.Price
	}
	out := make([]Aggregate, 0, len(byName))
	for k, a := range byName {
		a.AveragePrice = roundCents(sums[k] / float64(a.ProductCount))
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b Aggregate) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func appendNew(list []string, v string) []string {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

func roundCents(f float64) float64 { return math.Round(f*100) / 100 }
