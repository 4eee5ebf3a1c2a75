package demo

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate"
)

type productPage struct {
	Data       []Product `json:"data"`
	Page       int       `json:"page"`
	PerPage    int       `json:"per_page"`
	Total      int       `json:"total"`
	TotalPages int       `json:"total_pages"`
}

func getProducts(t *testing.T, h http.Handler, query string) productPage {
	t.Helper()
	res := do(t, h, "GET", "/v2/products?"+query, "")
	if res.status != http.StatusOK {
		t.Fatalf("GET /v2/products?%s: %d %s", query, res.status, res.body)
	}
	var p productPage
	res.decode(t, &p)
	return p
}

// allProducts walks every page of a query.
func allProducts(t *testing.T, h http.Handler, query string) []Product {
	t.Helper()
	var out []Product
	for page := 1; ; page++ {
		p := getProducts(t, h, fmt.Sprintf("%s&per_page=100&page=%d", query, page))
		out = append(out, p.Data...)
		if page >= p.TotalPages {
			return out
		}
	}
}

func countWhere(keep func(p *Product) bool) int {
	n := 0
	for i := range products {
		if keep(&products[i]) {
			n++
		}
	}
	return n
}

func TestDatasetIsLargeVariedAndFixed(t *testing.T) {
	if len(products) != len(dispensaries)*productsPerDispensary || len(products) < 300 {
		t.Fatalf("%d products, want %d (at least 300)", len(products), len(dispensaries)*productsPerDispensary)
	}
	if !reflect.DeepEqual(generateProducts(), products) {
		t.Fatal("generating the menu twice gave different products")
	}
	states, brandNames, dispensaryNames, ids := map[string]int{}, map[string]int{}, map[string]int{}, map[string]bool{}
	for _, p := range products {
		states[p.State]++
		brandNames[p.Brand]++
		dispensaryNames[p.Dispensary]++
		if ids[p.ID] {
			t.Fatalf("product id %s is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Name == "" || p.Category == "" || p.StrainType == "" || p.Price <= 0 || p.City == "" || p.Weight == "" {
			t.Fatalf("incomplete product: %+v", p)
		}
		if (p.THCPercent == nil) == (p.THCMg == nil) {
			t.Fatalf("product %s must have exactly one of thc_percent and thc_mg: %+v", p.ID, p)
		}
	}
	for _, s := range []string{"California", "Colorado", "Michigan", "New York", "Oregon"} {
		if states[s] == 0 {
			t.Errorf("no products in %s", s)
		}
	}
	if len(states) < 6 || len(brandNames) < 6 || len(dispensaryNames) < 6 {
		t.Errorf("%d states, %d brands, %d dispensaries; want at least 6 of each", len(states), len(brandNames), len(dispensaryNames))
	}
}

func TestProductsStayWithinEntitlements(t *testing.T) {
	h := MenusAPI(verified(demoIdentity))
	got := allProducts(t, h, "")
	want := countWhere(func(p *Product) bool { return slices.Contains(DemoStates, p.State) })
	if len(got) != want || want == 0 {
		t.Fatalf("demo org sees %d products, want the %d in its states", len(got), want)
	}
	for _, p := range got {
		if !slices.Contains(DemoStates, p.State) {
			t.Fatalf("demo org sees %s in %s", p.ID, p.State)
		}
	}

	// Asking for a state outside the entitlements finds nothing, even if
	// the request somehow got past keygate's entitlement check.
	for _, q := range []string{"states=New+York", "states=new+york", "states=Oregon,New+York"} {
		if p := getProducts(t, h, q); p.Total != 0 || len(p.Data) != 0 || p.TotalPages != 0 {
			t.Errorf("%s: demo org got total %d, %d items", q, p.Total, len(p.Data))
		}
	}
}

func TestUnrestrictedOrganizationSeesEveryState(t *testing.T) {
	got := allProducts(t, MenusAPI(verified(acmeIdentity)), "")
	if len(got) != len(products) {
		t.Fatalf("acme sees %d products, want all %d", len(got), len(products))
	}
	ny := getProducts(t, MenusAPI(verified(acmeIdentity)), "states=New+York")
	if want := countWhere(func(p *Product) bool { return p.State == "New York" }); ny.Total != want || want == 0 {
		t.Fatalf("acme New York total = %d, want %d", ny.Total, want)
	}
}

func TestEntitlementsMatchCaseInsensitively(t *testing.T) {
	id := *demoIdentity
	id.Entitlements = keygate.Entitlements{States: []string{"california"}, Brands: []string{"PACIFIC RESERVE"}}
	got := allProducts(t, MenusAPI(verified(&id)), "")
	want := countWhere(func(p *Product) bool { return p.State == "California" && p.Brand == "Pacific Reserve" })
	if len(got) != want || want == 0 {
		t.Fatalf("got %d products, want %d", len(got), want)
	}
}

func TestDispensaryEntitlement(t *testing.T) {
	id := *acmeIdentity
	id.Entitlements = keygate.Entitlements{Dispensaries: []string{"Empire Leaf"}}
	got := allProducts(t, MenusAPI(verified(&id)), "")
	if len(got) != productsPerDispensary {
		t.Fatalf("got %d products, want the %d of Empire Leaf", len(got), productsPerDispensary)
	}
	for _, p := range got {
		if p.Dispensary != "Empire Leaf" || p.State != "New York" || p.City != "New York" {
			t.Fatalf("unexpected product %+v", p)
		}
	}
}

func TestPagination(t *testing.T) {
	h := MenusAPI(verified(demoIdentity))
	all := allProducts(t, h, "")
	n := len(all)

	first := getProducts(t, h, "states=California&page=1") // the seed's example
	if first.Page != 1 || first.PerPage != DefaultPerPage || len(first.Data) != DefaultPerPage {
		t.Fatalf("page 1: page=%d per_page=%d len=%d", first.Page, first.PerPage, len(first.Data))
	}

	p2 := getProducts(t, h, "page=2")
	wantPages := (n + 24) / 25
	if p2.Total != n || p2.TotalPages != wantPages || p2.Page != 2 || p2.PerPage != 25 {
		t.Fatalf("page 2 envelope: %+v, want total %d pages %d", p2, n, wantPages)
	}
	if ids(p2.Data) != ids(all[25:50]) {
		t.Fatalf("page 2 = %s, want %s", ids(p2.Data), ids(all[25:50]))
	}

	last := getProducts(t, h, fmt.Sprintf("page=%d", wantPages))
	if want := n - (wantPages-1)*25; len(last.Data) != want {
		t.Fatalf("last page has %d items, want %d", len(last.Data), want)
	}
	if ids(last.Data) != ids(all[(wantPages-1)*25:]) {
		t.Fatal("last page does not end the list")
	}

	past := getProducts(t, h, fmt.Sprintf("page=%d", wantPages+1))
	if len(past.Data) != 0 || past.Total != n || past.TotalPages != wantPages || past.Data == nil {
		t.Fatalf("page past the end: %+v", past)
	}
	if res := do(t, h, "GET", fmt.Sprintf("/v2/products?page=%d", wantPages+1), ""); !strings.Contains(res.body, `"data":[]`) {
		t.Fatalf("page past the end must answer an empty list, got %s", res.body)
	}

	seven := getProducts(t, h, "per_page=7&page=3")
	if seven.TotalPages != (n+6)/7 || ids(seven.Data) != ids(all[14:21]) {
		t.Fatalf("per_page=7 page 3: %+v", seven)
	}
	if max := getProducts(t, h, "per_page=100"); len(max.Data) != min(100, n) {
		t.Fatalf("per_page=100 gave %d items", len(max.Data))
	}
}

func TestPaginationRefusesBadValues(t *testing.T) {
	h := MenusAPI(verified(demoIdentity))
	for query, want := range map[string]string{
		"page=0":       `{"detail":[{"loc":["query","page"],"msg":"Input should be greater than or equal to 1","type":"greater_than_equal"}]}`,
		"page=abc":     `{"detail":[{"loc":["query","page"],"msg":"Input should be a valid integer, unable to parse string as an integer","type":"int_parsing"}]}`,
		"per_page=101": `{"detail":[{"loc":["query","per_page"],"msg":"Input should be less than or equal to 100","type":"less_than_equal"}]}`,
		"per_page=-5":  `{"detail":[{"loc":["query","per_page"],"msg":"Input should be greater than or equal to 1","type":"greater_than_equal"}]}`,
	} {
		for _, path := range []string{"/v2/products", "/v2/brands", "/v2/dispensaries"} {
			do(t, h, "GET", path+"?"+query, "").expect(t, http.StatusUnprocessableEntity, want)
		}
	}
}

func TestFiltersCombine(t *testing.T) {
	h := MenusAPI(verified(demoIdentity))

	got := allProducts(t, h, "states=California&brands=Pacific+Reserve")
	want := countWhere(func(p *Product) bool { return p.State == "California" && p.Brand == "Pacific Reserve" })
	if len(got) != want || want == 0 {
		t.Fatalf("California + Pacific Reserve: %d products, want %d", len(got), want)
	}
	for _, p := range got {
		if p.State != "California" || p.Brand != "Pacific Reserve" {
			t.Fatalf("filter let through %+v", p)
		}
	}

	// Comma-separated and repeated values are one list.
	twoStates := countWhere(func(p *Product) bool { return p.State == "Colorado" || p.State == "Michigan" })
	for _, q := range []string{"states=Colorado,Michigan", "states=Colorado&states=Michigan", "states=colorado,+MICHIGAN"} {
		if p := getProducts(t, h, q); p.Total != twoStates {
			t.Errorf("%s: total %d, want %d", q, p.Total, twoStates)
		}
	}

	// A dispensary filter intersects with the state filter.
	if p := getProducts(t, h, "states=Colorado&dispensaries=Golden+Gate+Greens"); p.Total != 0 {
		t.Errorf("Colorado + a California dispensary: total %d, want 0", p.Total)
	}
	if p := getProducts(t, h, "dispensaries=Golden+Gate+Greens,Mile+High+Dispensary"); p.Total != 2*productsPerDispensary {
		t.Errorf("two dispensaries: total %d, want %d", p.Total, 2*productsPerDispensary)
	}
	// A brand sold only outside the entitlements finds nothing.
	if p := getProducts(t, h, "brands=Hudson+Craft"); p.Total != 0 {
		t.Errorf("Hudson Craft (New York, Massachusetts): demo org total %d, want 0", p.Total)
	}
}

type brandPage struct {
	Data  []BrandSummary `json:"data"`
	Total int            `json:"total"`
}

func TestBrands(t *testing.T) {
	res := do(t, MenusAPI(verified(demoIdentity)), "GET", "/v2/brands?per_page=100", "")
	var p brandPage
	res.decode(t, &p)
	if res.status != http.StatusOK || p.Total != len(p.Data) || p.Total < 6 {
		t.Fatalf("%d: %d brands of %d", res.status, len(p.Data), p.Total)
	}
	sum := 0
	for i, b := range p.Data {
		sum += b.ProductCount
		if i > 0 && p.Data[i-1].Name >= b.Name {
			t.Errorf("brands not sorted by name: %s before %s", p.Data[i-1].Name, b.Name)
		}
		for _, s := range b.States {
			if !slices.Contains(DemoStates, s) {
				t.Errorf("brand %s lists %s to the demo org", b.Name, s)
			}
		}
		if b.Name == "Hudson Craft" || b.Name == "Cascade Gardens" {
			t.Errorf("demo org sees %s, sold only outside its states", b.Name)
		}
	}
	if want := countWhere(func(p *Product) bool { return slices.Contains(DemoStates, p.State) }); sum != want {
		t.Errorf("brand product counts add up to %d, want %d", sum, want)
	}

	res = do(t, MenusAPI(verified(demoIdentity)), "GET", "/v2/brands?states=Michigan&brands=Great+Lakes+Growers", "")
	res.decode(t, &p)
	want := countWhere(func(p *Product) bool { return p.State == "Michigan" && p.Brand == "Great Lakes Growers" })
	if len(p.Data) != 1 || p.Data[0].ProductCount != want || !reflect.DeepEqual(p.Data[0].States, []string{"Michigan"}) {
		t.Fatalf("Great Lakes Growers in Michigan: %+v, want %d products", p.Data, want)
	}
}

type dispensaryPage struct {
	Data  []DispensarySummary `json:"data"`
	Total int                 `json:"total"`
}

func TestDispensaries(t *testing.T) {
	h := MenusAPI(verified(demoIdentity))
	var p dispensaryPage
	do(t, h, "GET", "/v2/dispensaries", "").decode(t, &p)
	want := 0
	for _, d := range dispensaries {
		if slices.Contains(DemoStates, d.State) {
			want++
		}
	}
	if p.Total != want || len(p.Data) != want {
		t.Fatalf("demo org sees %d dispensaries (total %d), want %d", len(p.Data), p.Total, want)
	}
	for _, d := range p.Data {
		if !slices.Contains(DemoStates, d.State) || d.City == "" || d.ProductCount != productsPerDispensary {
			t.Errorf("unexpected dispensary %+v", d)
		}
	}

	do(t, h, "GET", "/v2/dispensaries?states=Colorado", "").decode(t, &p)
	if p.Total != 3 || p.Data[0].City != "Boulder" || p.Data[1].City != "Colorado Springs" || p.Data[2].City != "Denver" {
		t.Fatalf("Colorado dispensaries sorted by city: %+v", p.Data)
	}
	do(t, h, "GET", "/v2/dispensaries?states=Oregon", "").decode(t, &p)
	if p.Total != 0 {
		t.Fatalf("demo org sees %d Oregon dispensaries", p.Total)
	}
}

func TestAnalytics(t *testing.T) {
	var res struct{ Data Analytics }
	do(t, MenusAPI(verified(demoIdentity)), "GET", "/v2/analytics", "").decode(t, &res)
	a := res.Data
	var want []*Product
	for i := range products {
		if slices.Contains(DemoStates, products[i].State) {
			want = append(want, &products[i])
		}
	}
	if a.TotalProducts != len(want) {
		t.Fatalf("total_products = %d, want %d", a.TotalProducts, len(want))
	}
	var names []string
	stateSum := 0
	for _, s := range a.States {
		names = append(names, s.Name)
		stateSum += s.ProductCount
	}
	if !reflect.DeepEqual(names, []string{"California", "Colorado", "Michigan"}) || stateSum != len(want) {
		t.Fatalf("states = %v adding to %d", names, stateSum)
	}
	var ca, caSum float64
	for _, p := range want {
		if p.State == "California" {
			ca++
			caSum += p.Price
		}
	}
	if got := a.States[0].AveragePrice; got != roundCents(caSum/ca) {
		t.Fatalf("California average price = %v, want %v", got, roundCents(caSum/ca))
	}

	do(t, MenusAPI(verified(acmeIdentity)), "GET", "/v2/analytics?states=New+York,Oregon", "").decode(t, &res)
	if len(res.Data.States) != 2 || res.Data.States[0].Name != "New York" || res.Data.States[1].Name != "Oregon" {
		t.Fatalf("acme New York + Oregon analytics: %+v", res.Data.States)
	}
}

func TestMenusNeedAnIdentity(t *testing.T) {
	for _, reader := range []IdentityReader{bypassed, verified(nil), nil} {
		h := MenusAPI(reader)
		for _, path := range []string{"/v2/products?states=California&page=1", "/v2/brands", "/v2/dispensaries", "/v2/analytics"} {
			do(t, h, "GET", path, "").expect(t, http.StatusUnauthorized, `{"error":"missing identity"}`)
		}
	}
}

func TestMenusUnknownRoute(t *testing.T) {
	h := MenusAPI(verified(demoIdentity))
	for _, c := range []struct{ method, path string }{{"GET", "/v2/strains"}, {"GET", "/"}, {"POST", "/v2/products"}, {"GET", "/v1/products"}} {
		do(t, h, c.method, c.path, "").expect(t, http.StatusNotFound, `{"detail": "Not Found"}`)
	}
}

func ids(ps []Product) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.ID + " ")
	}
	return b.String()
}
