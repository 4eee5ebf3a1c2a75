package demo

import (
	"fmt"
	"math"
	"slices"
)

// The menus dataset: fictional dispensaries and brands in ten states, and a
// menu of products generated from them with a fixed seed, so every run,
// test and doc sees the same products.

// Product is one item on a dispensary's menu.
type Product struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Brand        string   `json:"brand"`
	BrandID      string   `json:"brand_id"`
	Category     string   `json:"category"`
	Strain       string   `json:"strain,omitempty"`
	StrainType   string   `json:"strain_type"`
	THCPercent   *float64 `json:"thc_percent"`
	THCMg        *float64 `json:"thc_mg"`
	CBDPercent   *float64 `json:"cbd_percent"`
	Weight       string   `json:"weight"`
	Price        float64  `json:"price"`
	Currency     string   `json:"currency"`
	InStock      bool     `json:"in_stock"`
	Dispensary   string   `json:"dispensary"`
	DispensaryID string   `json:"dispensary_id"`
	City         string   `json:"city"`
	State        string   `json:"state"`
}

// Dispensary is a licensed store.
type Dispensary struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Address string `json:"address"`
	City    string `json:"city"`
	State   string `json:"state"`
}

// brand is a producer whose products dispensaries carry.
type brand struct {
	ID         string
	Name       string
	States     []string // where it is sold
	Categories []string // what it makes
}

// Product categories.
const (
	categoryFlower       = "Flower"
	categoryPreRolls     = "Pre-Rolls"
	categoryVape         = "Vape"
	categoryConcentrates = "Concentrates"
	categoryEdibles      = "Edibles"
	categoryTinctures    = "Tinctures"
	categoryTopicals     = "Topicals"
)

// States of the dataset. The demo organization is entitled to the first
// three only.
const (
	stateCalifornia    = "California"
	stateColorado      = "Colorado"
	stateMichigan      = "Michigan"
	stateNewYork       = "New York"
	stateOregon        = "Oregon"
	stateWashington    = "Washington"
	stateMassachusetts = "Massachusetts"
	stateNevada        = "Nevada"
	stateIllinois      = "Illinois"
	stateArizona       = "Arizona"
)

var allStates = []string{
	stateCalifornia, stateColorado, stateMichigan, stateNewYork, stateOregon,
	stateWashington, stateMassachusetts, stateNevada, stateIllinois, stateArizona,
}

var dispensaries = []Dispensary{
	{"disp_01", "Golden Gate Greens", "1420 Market St", "San Francisco", stateCalifornia},
	{"disp_02", "Sunset Boulevard Collective", "8120 Sunset Blvd", "Los Angeles", stateCalifornia},
	{"disp_03", "Harbor Herbs", "610 Harbor Dr", "San Diego", stateCalifornia},
	{"disp_04", "Capitol Cannabis Co.", "1215 K St", "Sacramento", stateCalifornia},
	{"disp_05", "Mile High Dispensary", "1600 E Colfax Ave", "Denver", stateColorado},
	{"disp_06", "Flatirons Wellness", "2040 Pearl St", "Boulder", stateColorado},
	{"disp_07", "Pikes Peak Provisions", "455 N Tejon St", "Colorado Springs", stateColorado},
	{"disp_08", "Motor City Cannabis", "3300 Woodward Ave", "Detroit", stateMichigan},
	{"disp_09", "Huron River Dispensary", "215 S Main St", "Ann Arbor", stateMichigan},
	{"disp_10", "Grand River Remedies", "88 Monroe Center St NW", "Grand Rapids", stateMichigan},
	{"disp_11", "Empire Leaf", "412 Broadway", "New York", stateNewYork},
	{"disp_12", "Queen City Cannabis", "710 Elmwood Ave", "Buffalo", stateNewYork},
	{"disp_13", "Hudson Valley Harvest", "96 Lark St", "Albany", stateNewYork},
	{"disp_14", "Rose City Remedies", "2215 SE Hawthorne Blvd", "Portland", stateOregon},
	{"disp_15", "Willamette Wellness", "540 Willamette St", "Eugene", stateOregon},
	{"disp_16", "High Desert Dispensary", "1010 NW Wall St", "Bend", stateOregon},
	{"disp_17", "Emerald City Cannabis", "1530 Pike Pl", "Seattle", stateWashington},
	{"disp_18", "Lilac City Leaf", "420 W Riverside Ave", "Spokane", stateWashington},
	{"disp_19", "Back Bay Botanicals", "300 Newbury St", "Boston", stateMassachusetts},
	{"disp_20", "Commonwealth Cannabis", "120 Shrewsbury St", "Worcester", stateMassachusetts},
	{"disp_21", "Neon Desert Dispensary", "3700 S Las Vegas Blvd", "Las Vegas", stateNevada},
	{"disp_22", "Truckee Meadows Cannabis", "255 N Virginia St", "Reno", stateNevada},
	{"disp_23", "Windy City Wellness", "875 N Michigan Ave", "Chicago", stateIllinois},
	{"disp_24", "Sonoran Bloom", "1 N Central Ave", "Phoenix", stateArizona},
}

var brands = []brand{
	{"brand_01", "Pacific Reserve", []string{stateCalifornia, stateOregon, stateWashington, stateNevada}, []string{categoryFlower, categoryPreRolls}},
	{"brand_02", "Golden State Extracts", []string{stateCalifornia, stateNevada, stateArizona}, []string{categoryVape, categoryConcentrates}},
	{"brand_03", "Mile High Farms", []string{stateColorado, stateArizona}, []string{categoryFlower, categoryPreRolls}},
	{"brand_04", "Rocky Ridge Edibles", []string{stateColorado, stateMichigan, stateIllinois}, []string{categoryEdibles}},
	{"brand_05", "Great Lakes Growers", []string{stateMichigan, stateIllinois, stateNewYork}, []string{categoryFlower, categoryPreRolls}},
	{"brand_06", "Hudson Craft", []string{stateNewYork, stateMassachusetts}, []string{categoryFlower, categoryVape}},
	{"brand_07", "Cascade Gardens", []string{stateOregon, stateWashington}, []string{categoryFlower, categoryConcentrates}},
	{"brand_08", "Desert Bloom", []string{stateNevada, stateArizona, stateCalifornia}, []string{categoryEdibles, categoryVape}},
	{"brand_09", "Northern Lights Co.", allStates, []string{categoryFlower, categoryVape, categoryPreRolls}},
	{"brand_10", "Kindred Botanicals", allStates, []string{categoryTinctures, categoryTopicals, categoryEdibles}},
	{"brand_11", "Emerald Coast Confections", []string{stateCalifornia, stateOregon, stateMassachusetts, stateNewYork, stateMichigan}, []string{categoryEdibles}},
	{"brand_12", "Summit Solventless", []string{stateColorado, stateCalifornia, stateMichigan, stateOregon}, []string{categoryConcentrates}},
}

type strain struct {
	Name string
	Type string // Indica, Sativa, Hybrid or CBD
}

var strains = []strain{
	{"Blue Dream", "Hybrid"}, {"OG Kush", "Hybrid"}, {"Sour Diesel", "Sativa"},
	{"Gelato", "Hybrid"}, {"Wedding Cake", "Indica"}, {"GSC", "Hybrid"},
	{"Granddaddy Purple", "Indica"}, {"Jack Herer", "Sativa"}, {"Pineapple Express", "Hybrid"},
	{"Northern Lights", "Indica"}, {"Gorilla Glue #4", "Hybrid"}, {"Zkittlez", "Indica"},
	{"Durban Poison", "Sativa"}, {"Purple Punch", "Indica"}, {"Runtz", "Hybrid"},
	{"Ice Cream Cake", "Indica"}, {"Tangie", "Sativa"}, {"Green Crack", "Sativa"},
	{"Harlequin", "CBD"}, {"ACDC", "CBD"},
}

var (
	edibleFlavors  = []string{"Watermelon", "Blood Orange", "Sour Cherry", "Blackberry", "Mango", "Pomegranate", "Dark Chocolate Sea Salt", "Mint Chocolate"}
	concentrateFor = []string{"Badder", "Live Rosin", "Shatter", "Diamonds", "Sugar"}
	tinctureRatios = []struct{ Name, Type string }{{"1:1 THC:CBD", "Hybrid"}, {"20:1 CBD:THC", "CBD"}, {"THC Sleep", "Indica"}, {"THC Daytime", "Sativa"}}
	topicalNames   = []string{"CBD Relief Balm", "Cooling Muscle Rub", "Lavender Body Lotion"}
	menuTypes      = []string{"Hybrid", "Indica", "Sativa"}
)

// productsPerDispensary × 24 dispensaries gives the 336 products of the menu.
const productsPerDispensary = 14

// menuSeed fixes the generated menu; changing it changes every product.
const menuSeed = 420

// products is the whole menu, generated once.
var products = generateProducts()

// generateProducts builds each dispensary's menu from the brands sold in its
// state, in a fixed order, so product ids are stable.
func generateProducts() []Product {
	rng := splitmix(menuSeed)
	out := make([]Product, 0, len(dispensaries)*productsPerDispensary)
	for _, d := range dispensaries {
		sold := brandsIn(d.State)
		for range productsPerDispensary {
			b := sold[rng.intn(len(sold))]
			p := newProduct(&rng, b.Categories[rng.intn(len(b.Categories))])
			p.ID = fmt.Sprintf("prod_%04d", len(out)+1)
			p.Brand, p.BrandID = b.Name, b.ID
			p.Dispensary, p.DispensaryID = d.Name, d.ID
			p.City, p.State = d.City, d.State
			p.Currency = "USD"
			p.InStock = rng.intn(10) != 0 // about one in ten is sold out
			out = append(out, p)
		}
	}
	return out
}

func brandsIn(state string) []brand {
	var out []brand
	for _, b := range brands {
		if slices.Contains(b.States, state) {
			out = append(out, b)
		}
	}
	return out
}

// newProduct fills the category-specific fields: name, strain, potency,
// weight and a price in that category's usual range.
func newProduct(rng *prng, category string) Product {
	p := Product{Category: category}
	s := strains[rng.intn(len(strains))]
	smoked := func(minTHC, maxTHC float64) {
		p.Strain, p.StrainType = s.Name, s.Type
		if s.Type == "CBD" {
			p.THCPercent = ptr(rng.tenths(1, 9))
			p.CBDPercent = ptr(rng.tenths(10, 18))
		} else {
			p.THCPercent = ptr(rng.tenths(minTHC, maxTHC))
			p.CBDPercent = ptr(rng.tenths(0, 1))
		}
	}
	switch category {
	case categoryFlower:
		smoked(16, 32)
		sizes := []struct {
			weight   string
			min, max int
		}{{"3.5g", 25, 60}, {"7g", 45, 100}, {"14g", 80, 180}, {"28g", 140, 320}}
		size := sizes[rng.intn(len(sizes))]
		p.Name, p.Weight = s.Name, size.weight
		p.Price = rng.dollars(size.min, size.max)
	case categoryPreRolls:
		smoked(18, 30)
		if rng.intn(2) == 0 {
			p.Name, p.Weight, p.Price = s.Name+" Pre-Roll", "1g", rng.dollars(8, 18)
		} else {
			p.Name, p.Weight, p.Price = s.Name+" Pre-Roll 5-Pack", "3.5g", rng.dollars(30, 55)
		}
	case categoryVape:
		smoked(70, 90)
		if rng.intn(2) == 0 {
			p.Name, p.Weight, p.Price = s.Name+" Live Resin Cartridge", "0.5g", rng.dollars(25, 45)
		} else {
			p.Name, p.Weight, p.Price = s.Name+" Live Resin Cartridge", "1g", rng.dollars(40, 70)
		}
	case categoryConcentrates:
		smoked(65, 90)
		p.Name = s.Name + " " + concentrateFor[rng.intn(len(concentrateFor))]
		p.Weight, p.Price = "1g", rng.dollars(30, 80)
	case categoryEdibles:
		flavor := edibleFlavors[rng.intn(len(edibleFlavors))]
		kind := " Gummies"
		if rng.intn(3) == 0 {
			kind = " Chocolate Bar"
		}
		p.Name, p.StrainType = flavor+kind, menuTypes[rng.intn(len(menuTypes))]
		p.THCMg = ptr(100)
		p.Weight, p.Price = "100mg", rng.dollars(15, 28)
	case categoryTinctures:
		t := tinctureRatios[rng.intn(len(tinctureRatios))]
		p.Name, p.StrainType = t.Name+" Tincture", t.Type
		p.THCMg = ptr(float64(300 * (1 + rng.intn(3))))
		p.Weight, p.Price = "30ml", rng.dollars(30, 65)
	case categoryTopicals:
		p.Name, p.StrainType = topicalNames[rng.intn(len(topicalNames))], "CBD"
		p.THCMg = ptr(100)
		p.Weight, p.Price = "2oz", rng.dollars(25, 45)
	}
	return p
}

func ptr(f float64) *float64 { return &f }

// prng is splitmix64: tiny, fast and fully specified, so the generated menu
// never changes with the Go version.
type prng uint64

func splitmix(seed uint64) prng { return prng(seed) }

func (r *prng) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	z := uint64(*r)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a number in [0, n).
func (r *prng) intn(n int) int { return int(r.next() % uint64(n)) }

// tenths returns a number in [min, max] with one decimal.
func (r *prng) tenths(min, max float64) float64 {
	steps := int(math.Round((max - min) * 10))
	return math.Round((min+float64(r.intn(steps+1))/10)*10) / 10
}

// dollars returns a whole-dollar price in [min, max].
func (r *prng) dollars(min, max int) float64 {
	return float64(min + r.intn(max-min+1))
}
