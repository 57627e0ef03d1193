package protocol_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

// rate is a plain rule set, one point per 1.00 EUR rounded down, changed by
// mut. Its Version (7) shows up in every quote.
func rate(mut ...func(*protocol.RuleSet)) protocol.RuleSet {
	r := protocol.RuleSet{
		Partner: "acme_foods", Version: 7, EffectiveFrom: t0.Add(-24 * time.Hour),
		Currency: "EUR", Points: 1, Per: 100,
	}
	for _, m := range mut {
		m(&r)
	}
	return r
}

func rounding(m protocol.Rounding) func(*protocol.RuleSet) {
	return func(r *protocol.RuleSet) { r.Rounding = m }
}

func skus(kv ...string) func(*protocol.RuleSet) {
	return func(r *protocol.RuleSet) { r.SKUs = multipliers(kv...) }
}

func categories(kv ...string) func(*protocol.RuleSet) {
	return func(r *protocol.RuleSet) { r.Categories = multipliers(kv...) }
}

func multipliers(kv ...string) map[string]protocol.Multiplier {
	m := map[string]protocol.Multiplier{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = protocol.Multiplier(kv[i+1])
	}
	return m
}

func campaigns(cs ...protocol.Campaign) func(*protocol.RuleSet) {
	return func(r *protocol.RuleSet) { r.Campaigns = cs }
}

// around is a campaign window of an hour either side of t0.
func around(id string, mult protocol.Multiplier, bonus int64) protocol.Campaign {
	return protocol.Campaign{ID: id, From: t0.Add(-time.Hour), To: t0.Add(time.Hour), Multiplier: mult, Bonus: bonus}
}

// earnOf is an earn of amount EUR at t0, with lines if given.
func earnOf(amount int64, lines ...protocol.Line) protocol.Transaction {
	t := earnTx()
	t.Amount, t.Currency, t.Lines = amount, "EUR", lines
	return t
}

func at(tx protocol.Transaction, when time.Time) protocol.Transaction {
	tx.CreatedAt = when
	return tx
}

func line(sku, category string, amount int64) protocol.Line {
	return protocol.Line{SKU: sku, Category: category, Amount: amount}
}

// base is the quote of Base points and no bonus under rate().
func base(points int64, campaigns ...string) protocol.Quote {
	return protocol.Quote{Points: points, Base: points, RulesVersion: 7, Campaigns: campaigns}
}

func TestPrice(t *testing.T) {
	type priceCase struct {
		name         string
		rules        protocol.RuleSet
		tx           protocol.Transaction
		newToPartner bool
		want         protocol.Quote
	}
	var cases []priceCase
	add := func(name string, r protocol.RuleSet, tx protocol.Transaction, want protocol.Quote) {
		cases = append(cases, priceCase{name, r, tx, false, want})
	}
	down, nearest, up := rounding(protocol.RoundDown), rounding(protocol.RoundNearest), rounding(protocol.RoundUp)

	// The plain rate: 1 point per 100 minor units.
	add("1999 down", rate(down), earnOf(1999), base(19))
	add("1999 default rounding is down", rate(), earnOf(1999), base(19))
	add("1999 nearest", rate(nearest), earnOf(1999), base(20))
	add("1999 up", rate(up), earnOf(1999), base(20))
	add("1950 down", rate(down), earnOf(1950), base(19))
	add("1950 nearest rounds half up", rate(nearest), earnOf(1950), base(20))
	add("1950 up", rate(up), earnOf(1950), base(20))
	add("1949 nearest", rate(nearest), earnOf(1949), base(19))
	add("1949 up", rate(up), earnOf(1949), base(20))
	add("2000 up is exact", rate(up), earnOf(2000), base(20))
	add("2001 up", rate(up), earnOf(2001), base(21))
	add("1 down", rate(down), earnOf(1), base(0))
	add("1 up", rate(up), earnOf(1), base(1))
	add("49 nearest", rate(nearest), earnOf(49), base(0))
	add("50 nearest", rate(nearest), earnOf(50), base(1))
	// 5 points per 10.00: 1999 → 9.995.
	per1000 := func(r *protocol.RuleSet) { r.Points, r.Per = 5, 1000 }
	add("5 per 1000 down", rate(per1000, down), earnOf(1999), base(9))
	add("5 per 1000 nearest", rate(per1000, nearest), earnOf(1999), base(10))
	add("5 per 1000 up", rate(per1000, up), earnOf(1999), base(10))
	add("rate zero", rate(up, func(r *protocol.RuleSet) { r.Points = 0 }), earnOf(123456), base(0))
	jpy := earnOf(12345)
	jpy.Currency = "JPY"
	add("JPY 1 per 100 yen", rate(func(r *protocol.RuleSet) { r.Currency = "JPY" }), jpy, base(123))

	// Line multipliers: a SKU's wins over its category's, else 1.
	add("sku beats category", rate(categories("dairy", "2"), skus("SKU-4711", "3")),
		earnOf(2000, line("SKU-4711", "dairy", 1000), line("", "dairy", 500), line("SKU-0815", "bakery", 500)),
		base(10*3+5*2+5*1))
	add("sku without category", rate(categories("dairy", "2"), skus("SKU-4711", "3")),
		earnOf(1000, line("SKU-4711", "", 1000)), base(30))
	add("unknown sku falls back to its category", rate(categories("dairy", "2"), skus("SKU-4711", "3")),
		earnOf(1000, line("SKU-0815", "dairy", 1000)), base(20))
	add("line with neither sku nor category", rate(categories("dairy", "2"), skus("SKU-4711", "3")),
		earnOf(1000, line("", "", 1000)), base(10))
	add("sku 1 beats category 0", rate(categories("tobacco", "0"), skus("nicotine-gum", "1")),
		earnOf(2000, line("nicotine-gum", "tobacco", 1000), line("cigarettes", "tobacco", 1000)), base(10))
	add("sku 0 beats category 2", rate(categories("dairy", "2"), skus("gift-card", "0")),
		earnOf(6000, line("gift-card", "dairy", 5000), line("", "dairy", 1000)), base(20))
	add("multiplier 0 excludes a line", rate(categories("tobacco", "0")),
		earnOf(6000, line("", "tobacco", 5000), line("", "grocery", 1000)), base(10))
	add("everything excluded, rounded up", rate(up, categories("tobacco", "0")),
		earnOf(6000, line("", "tobacco", 6000)), base(0))
	add("sku names are not categories", rate(categories("SKU-4711", "5")),
		earnOf(1000, line("SKU-4711", "", 1000)), base(10))

	// Fractional multipliers, exact to four places.
	add("1.5", rate(skus("a", "1.5")), earnOf(1000, line("a", "", 1000)), base(15))
	add("0.25 down", rate(down, categories("c", "0.25")), earnOf(1000, line("", "c", 1000)), base(2))
	add("0.25 nearest", rate(nearest, categories("c", "0.25")), earnOf(1000, line("", "c", 1000)), base(3))
	add("0.25 up", rate(up, categories("c", "0.25")), earnOf(1000, line("", "c", 1000)), base(3))
	add("1.2345 down", rate(down, skus("a", "1.2345")), earnOf(10000, line("a", "", 10000)), base(123))
	add("1.2345 up", rate(up, skus("a", "1.2345")), earnOf(10000, line("a", "", 10000)), base(124))
	add("0.0001", rate(skus("a", "0.0001")), earnOf(1_000_000, line("a", "", 1_000_000)), base(1))
	add("100", rate(skus("a", "100")), earnOf(1000, line("a", "", 1000)), base(1000))

	// Rounding happens once, over the whole transaction: each of these
	// would come out differently rounded line by line.
	add("once down", rate(down), earnOf(300, line("", "", 150), line("", "", 150)), base(3)) // per line 1+1
	add("once nearest below half", rate(nearest),
		earnOf(447, line("", "", 149), line("", "", 149), line("", "", 149)), base(4)) // 4.47; per line 1+1+1
	add("once nearest above half", rate(nearest),
		earnOf(450, line("", "", 150), line("", "", 150), line("", "", 150)), base(5)) // 4.5; per line 2+2+2
	add("once up", rate(up), earnOf(202, line("", "", 101), line("", "", 101)), base(3)) // 2.02; per line 2+2
	add("once with multipliers", rate(down, skus("a", "1.5")),
		earnOf(100, line("a", "", 50), line("a", "", 50)), base(1)) // 0.75+0.75; per line 0+0
	add("once with fractional multipliers nearest", rate(nearest, categories("c", "0.25")),
		earnOf(600, line("", "c", 200), line("", "c", 200), line("", "c", 200)), base(2)) // 1.5; per line 1+1+1
	add("once with a campaign", rate(down, campaigns(around("c", "1.5", 0))), earnOf(1999), base(29, "c")) // 29.985, not 19×1.5

	// Campaigns: the highest multiplier applies, bonuses add up.
	add("two campaigns", rate(campaigns(around("a", "2", 10), around("b", "3", 5))), earnOf(1000),
		protocol.Quote{Points: 45, Base: 30, Bonus: 15, RulesVersion: 7, Campaigns: []string{"a", "b"}})
	add("two campaigns, highest first", rate(campaigns(around("b", "3", 5), around("a", "2", 10))), earnOf(1000),
		protocol.Quote{Points: 45, Base: 30, Bonus: 15, RulesVersion: 7, Campaigns: []string{"b", "a"}})
	add("campaign times line multipliers", rate(skus("a", "1.5"), campaigns(around("c", "2", 0))),
		earnOf(2000, line("a", "", 1000), line("", "", 1000)), base((15+10)*2, "c"))
	add("bonus-only campaign", rate(campaigns(around("b", "", 25))), earnOf(1999),
		protocol.Quote{Points: 44, Base: 19, Bonus: 25, RulesVersion: 7, Campaigns: []string{"b"}})
	// A campaign looks at the purchase (amount and time), not at what the
	// lines earn: its bonus is paid on a purchase whose lines earn nothing.
	add("bonus on an excluded purchase", rate(categories("tobacco", "0"), campaigns(around("b", "", 25))),
		earnOf(1000, line("", "tobacco", 1000)),
		protocol.Quote{Points: 25, Base: 0, Bonus: 25, RulesVersion: 7, Campaigns: []string{"b"}})
	minAmount := func(id string, min int64) protocol.Campaign {
		c := around(id, "2", 0)
		c.MinAmount = min
		return c
	}
	add("min_amount not reached", rate(campaigns(minAmount("big", 5000))), earnOf(4999), base(49))
	add("min_amount reached", rate(campaigns(minAmount("big", 5000))), earnOf(5000), base(100, "big"))
	add("min_amount counts excluded lines", rate(categories("tobacco", "0"), campaigns(minAmount("big", 5000))),
		earnOf(5000, line("", "tobacco", 4000), line("", "", 1000)), base(20, "big"))
	add("min_amount picks the campaign", rate(campaigns(around("small", "2", 1), minAmount("big", 5000))), earnOf(4999),
		protocol.Quote{Points: 100, Base: 99, Bonus: 1, RulesVersion: 7, Campaigns: []string{"small"}})

	// The window is [From, To), compared as instants.
	window := campaigns(protocol.Campaign{ID: "w", From: t0, To: t0.Add(time.Hour), Multiplier: "2", Bonus: 5})
	in := protocol.Quote{Points: 25, Base: 20, Bonus: 5, RulesVersion: 7, Campaigns: []string{"w"}}
	add("window: just before From", rate(window), at(earnOf(1000), t0.Add(-time.Nanosecond)), base(10))
	add("window: at From", rate(window), at(earnOf(1000), t0), in)
	add("window: at From in another zone", rate(window), at(earnOf(1000), t0.In(time.FixedZone("CET", 3600))), in)
	add("window: just before To", rate(window), at(earnOf(1000), t0.Add(time.Hour-time.Nanosecond)), in)
	add("window: at To", rate(window), at(earnOf(1000), t0.Add(time.Hour)), base(10))
	add("window: after To", rate(window), at(earnOf(1000), t0.Add(48*time.Hour)), base(10))

	// The cross-brand bonus, only for a member new to the partner.
	npb := func(r *protocol.RuleSet) { r.NewPartnerBonus = 100 }
	cases = append(cases,
		priceCase{"new to partner", rate(npb), earnOf(1999), true,
			protocol.Quote{Points: 119, Base: 19, Bonus: 100, RulesVersion: 7, NewPartnerBonus: true}},
		priceCase{"not new to partner", rate(npb), earnOf(1999), false, base(19)},
		priceCase{"new to partner without a bonus", rate(), earnOf(1999), true, base(19)},
		priceCase{"new to partner and a campaign", rate(npb, campaigns(around("c", "2", 5))), earnOf(1999), true,
			protocol.Quote{Points: 144, Base: 39, Bonus: 105, RulesVersion: 7, Campaigns: []string{"c"}, NewPartnerBonus: true}},
	)

	// At MaxPoints exactly: 1000 points per minor unit.
	steep := func(r *protocol.RuleSet) { r.Points, r.Per = 1000, 1 }
	add("at MaxPoints", rate(steep), earnOf(1_000_000), base(protocol.MaxPoints))
	add("at MaxPoints with a bonus", rate(steep, campaigns(around("c", "", 1000))), earnOf(999_999),
		protocol.Quote{Points: protocol.MaxPoints, Base: 999_999_000, Bonus: 1000, RulesVersion: 7, Campaigns: []string{"c"}})
	cases = append(cases, priceCase{"at MaxPoints with the new partner bonus",
		rate(steep, func(r *protocol.RuleSet) { r.NewPartnerBonus = 1000 }), earnOf(999_999), true,
		protocol.Quote{Points: protocol.MaxPoints, Base: 999_999_000, Bonus: 1000, RulesVersion: 7, NewPartnerBonus: true}})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.rules.Validate(); err != nil {
				t.Fatalf("rules invalid: %v", err)
			}
			if err := tc.tx.Validate(); err != nil {
				t.Fatalf("transaction invalid: %v", err)
			}
			got, err := tc.rules.Price(&tc.tx, tc.newToPartner)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Price:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPriceRefuses(t *testing.T) {
	steep := func(r *protocol.RuleSet) { r.Points, r.Per = 1000, 1 }
	usd := earnOf(1999)
	usd.Currency = "USD"
	huge := earnOf(protocol.MaxAmount, line("a", "", protocol.MaxAmount))
	for _, tc := range []struct {
		name         string
		rules        protocol.RuleSet
		tx           protocol.Transaction
		newToPartner bool
		code         protocol.Code
		field        string
	}{
		{"currency mismatch", rate(), usd, false, protocol.CodeCurrencyMismatch, "currency"},
		{"rules in another currency", rate(func(r *protocol.RuleSet) { r.Currency = "JPY" }), earnOf(1999), false, protocol.CodeCurrencyMismatch, "currency"},
		{"one over MaxPoints", rate(steep), earnOf(1_000_001), false, protocol.CodeInvalidPoints, "points"},
		// 3,000,000,001 / 3 = 1,000,000,000.33: rounded down it fits.
		{"over MaxPoints by rounding up", rate(oneIn3(protocol.RoundUp)), earnOf(3_000_000_001), false, protocol.CodeInvalidPoints, "points"},
		{"over MaxPoints by a campaign bonus", rate(steep, campaigns(around("c", "", 1001))), earnOf(999_999), false, protocol.CodeInvalidPoints, "points"},
		{"over MaxPoints by a campaign multiplier", rate(steep, campaigns(around("c", "1.0001", 0))), earnOf(1_000_000), false, protocol.CodeInvalidPoints, "points"},
		{"over MaxPoints by the new partner bonus", rate(steep, func(r *protocol.RuleSet) { r.NewPartnerBonus = 1001 }), earnOf(999_999), true, protocol.CodeInvalidPoints, "points"},
		// 10¹² × 100 × 100 × 10⁶ points: far past int64.
		{"beyond int64", rate(skus("a", "100"), campaigns(around("c", "100", 0)), func(r *protocol.RuleSet) { r.Points, r.Per = protocol.MaxRatePoints, 1 }),
			huge, false, protocol.CodeInvalidPoints, "points"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.rules.Validate(); err != nil {
				t.Fatalf("rules invalid: %v", err)
			}
			if err := tc.tx.Validate(); err != nil {
				t.Fatalf("transaction invalid: %v", err)
			}
			q, err := tc.rules.Price(&tc.tx, tc.newToPartner)
			checkErr(t, err, tc.code, tc.field)
			if q.Points != 0 {
				t.Errorf("refused, yet quoted %d points", q.Points)
			}
		})
	}
	// The same earns fit without what pushed them over.
	r := rate(steep, func(r *protocol.RuleSet) { r.NewPartnerBonus = 1001 })
	tx := earnOf(999_999)
	if q, err := r.Price(&tx, false); err != nil || q.Points != 999_999_000 {
		t.Errorf("not new to partner: %+v, %v", q, err)
	}
	r = rate(oneIn3(protocol.RoundNearest))
	tx = earnOf(3_000_000_001)
	if q, err := r.Price(&tx, false); err != nil || q.Points != protocol.MaxPoints {
		t.Errorf("rounded to nearest: %+v, %v", q, err)
	}
}

// oneIn3 is one point per 3 minor units, rounded as m says.
func oneIn3(m protocol.Rounding) func(*protocol.RuleSet) {
	return func(r *protocol.RuleSet) { r.Points, r.Per, r.Rounding = 1, 3, m }
}

// A valid rule set and earn whose base is just under 2⁶³: the campaign
// bonus must not wrap the sum around to a negative quote.
func TestPriceOverflowingBonus(t *testing.T) {
	r := rate(campaigns(around("c", "10", protocol.MaxPoints)), func(r *protocol.RuleSet) { r.Points, r.Per = protocol.MaxRatePoints, 1 })
	tx := earnOf(922_337_203_685) // base 922337203685 × 10 × 10⁶ = 9223372036850000000
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Validate(); err != nil {
		t.Fatal(err)
	}
	q, err := r.Price(&tx, false)
	checkErr(t, err, protocol.CodeInvalidPoints, "points")
	if q.Points != 0 {
		t.Errorf("refused, yet quoted %d points", q.Points)
	}
}

func TestCampaignActive(t *testing.T) {
	c := protocol.Campaign{ID: "c", From: t0, To: t0.Add(time.Hour), Bonus: 1, MinAmount: 100}
	for _, tc := range []struct {
		at     time.Time
		amount int64
		want   bool
	}{
		{t0.Add(-time.Nanosecond), 100, false},
		{t0, 100, true},
		{t0, 99, false},
		{t0, 1 << 40, true},
		{t0.Add(time.Hour - time.Nanosecond), 100, true},
		{t0.Add(time.Hour), 100, false},
		{t0.Add(time.Hour).In(time.FixedZone("", -5*3600)), 100, false},
	} {
		if got := c.Active(tc.at, tc.amount); got != tc.want {
			t.Errorf("Active(%v, %d) = %v, want %v", tc.at, tc.amount, got, tc.want)
		}
	}
}

func TestSelectRules(t *testing.T) {
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	rules := []protocol.RuleSet{
		rate(func(r *protocol.RuleSet) { r.Version, r.EffectiveFrom = 1, day(2026, 1, 1) }),
		rate(func(r *protocol.RuleSet) { r.Version, r.EffectiveFrom = 2, day(2026, 6, 1) }),
		rate(func(r *protocol.RuleSet) { r.Version, r.EffectiveFrom = 3, day(2026, 12, 1) }),
	}
	for _, tc := range []struct {
		name string
		at   time.Time
		want int // index into rules
	}{
		{"long before the first", day(2020, 1, 1), 0},
		{"just before the first", day(2026, 1, 1).Add(-time.Nanosecond), 0},
		{"at the first", day(2026, 1, 1), 0},
		{"just before the second", day(2026, 6, 1).Add(-time.Nanosecond), 0},
		{"at the second", day(2026, 6, 1), 1},
		{"at the second in another zone", day(2026, 6, 1).In(time.FixedZone("", 2*3600)), 1},
		{"the second's wall clock, two hours early", time.Date(2026, 6, 1, 0, 0, 0, 0, time.FixedZone("", 2*3600)), 0},
		{"between the second and third", day(2026, 11, 23), 1},
		{"at the third", day(2026, 12, 1), 2},
		{"long after the last", day(2099, 1, 1), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := protocol.SelectRules(rules, tc.at)
			if got != &rules[tc.want] {
				t.Fatalf("got %+v, want version %d", got, rules[tc.want].Version)
			}
		})
	}

	if got := protocol.SelectRules(nil, t0); got != nil {
		t.Errorf("no rules: got %+v", got)
	}
	if got := protocol.SelectRules([]protocol.RuleSet{}, t0); got != nil {
		t.Errorf("empty rules: got %+v", got)
	}
	one := rules[2:]
	if got := protocol.SelectRules(one, day(2000, 1, 1)); got != &one[0] {
		t.Errorf("one version, before it: got %+v", got)
	}
}

func TestMultiplierScaled(t *testing.T) {
	for _, tc := range []struct {
		m    protocol.Multiplier
		want int64
	}{
		{"0", 0},
		{"1", 10_000},
		{"2", 20_000},
		{"1.5", 15_000},
		{"0.25", 2_500},
		{"0.0001", 1},
		{"1.2345", 12_345},
		{"0.0", 0},
		{"1.0000", 10_000},
		{"01", 10_000},
		{"99.9999", 999_999},
		{"100", 1_000_000},
		{"100.0000", 1_000_000},
	} {
		got, err := tc.m.Scaled()
		if err != nil || got != tc.want {
			t.Errorf("%q.Scaled() = %d, %v; want %d", tc.m, got, err, tc.want)
		}
	}
	for _, m := range []protocol.Multiplier{
		"", "1.", ".5", "-1", "+1", "1e2", "1E2", "100.0001", "101", "1000000", "0.00001", "1.00000",
		" 1", "1 ", "1,5", "1.2.3", "0x10", "NaN", "Inf", "½", "١", "99999999999999999999",
	} {
		got, err := m.Scaled()
		if got != 0 {
			t.Errorf("%q.Scaled() = %d with error %v", m, got, err)
		}
		t.Run("", func(t *testing.T) { checkErr(t, err, protocol.CodeInvalidRules, "multiplier") })
	}
}

func TestRuleSetValidate(t *testing.T) {
	valid := validConfig().Rules[1]
	if err := valid.Validate(); err != nil {
		t.Fatalf("valid rules: %v", err)
	}
	entries := func(n int) map[string]protocol.Multiplier {
		m := make(map[string]protocol.Multiplier, n)
		for i := range n {
			m["k"+padInt(i, 5)] = "2"
		}
		return m
	}
	nCampaigns := func(n int) []protocol.Campaign {
		cs := make([]protocol.Campaign, n)
		for i := range cs {
			cs[i] = around("c"+padInt(i, 3), "2", 1)
		}
		return cs
	}
	long := strings.Repeat("x", protocol.MaxIDLen)
	for name, mut := range map[string]func(*protocol.RuleSet){
		"as in the config": func(r *protocol.RuleSet) {},
		"rate zero":        func(r *protocol.RuleSet) { r.Points = 0 },
		"rate at max":      func(r *protocol.RuleSet) { r.Points = protocol.MaxRatePoints },
		"per one":          func(r *protocol.RuleSet) { r.Per = 1 },
		"per at max":       func(r *protocol.RuleSet) { r.Per = protocol.MaxAmount },
		"rounding default": func(r *protocol.RuleSet) { r.Rounding = "" },
		"rounding down":    func(r *protocol.RuleSet) { r.Rounding = protocol.RoundDown },
		"rounding up":      func(r *protocol.RuleSet) { r.Rounding = protocol.RoundUp },
		"no tables":        func(r *protocol.RuleSet) { r.Categories, r.SKUs, r.Campaigns = nil, nil, nil },
		"tables at max": func(r *protocol.RuleSet) {
			r.Categories, r.SKUs = entries(protocol.MaxRuleEntries), entries(protocol.MaxRuleEntries)
		},
		"multipliers at bounds": func(r *protocol.RuleSet) {
			r.SKUs = multipliers("zero", "0", "max", "100", "tiny", "0.0001", long, "1")
		},
		"campaigns at max":      func(r *protocol.RuleSet) { r.Campaigns = nCampaigns(protocol.MaxCampaigns) },
		"campaign bonus only":   func(r *protocol.RuleSet) { r.Campaigns[0].Multiplier = "" },
		"campaign multiplier 1": func(r *protocol.RuleSet) { r.Campaigns[0].Multiplier, r.Campaigns[0].Bonus = "1", 0 },
		"campaign at the limits": func(r *protocol.RuleSet) {
			r.Campaigns[0].Bonus, r.Campaigns[0].MinAmount = protocol.MaxPoints, protocol.MaxAmount
			r.Campaigns[0].Name = strings.Repeat("n", 200)
		},
		"campaign of 1ns":       func(r *protocol.RuleSet) { r.Campaigns[0].To = r.Campaigns[0].From.Add(time.Nanosecond) },
		"campaign name unicode": func(r *protocol.RuleSet) { r.Campaigns[0].Name = "Doppelte Punkte – Weihnachten" },
		"new partner bonus max": func(r *protocol.RuleSet) { r.NewPartnerBonus = protocol.MaxPoints },
	} {
		r := validConfig().Rules[1]
		mut(&r)
		if err := r.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	for _, tc := range []struct {
		name  string
		mut   func(*protocol.RuleSet)
		code  protocol.Code
		field string
	}{
		{"partner empty", func(r *protocol.RuleSet) { r.Partner = "" }, protocol.CodeMissingField, "partner"},
		{"partner wildcard", func(r *protocol.RuleSet) { r.Partner = "acme+" }, protocol.CodeInvalidID, "partner"},
		{"version negative", func(r *protocol.RuleSet) { r.Version = -1 }, protocol.CodeInvalidRules, "version"},
		{"currency empty", func(r *protocol.RuleSet) { r.Currency = "" }, protocol.CodeInvalidCurrency, "currency"},
		{"currency lower case", func(r *protocol.RuleSet) { r.Currency = "eur" }, protocol.CodeInvalidCurrency, "currency"},
		{"points negative", func(r *protocol.RuleSet) { r.Points = -1 }, protocol.CodeInvalidRules, "points"},
		{"points over max", func(r *protocol.RuleSet) { r.Points = protocol.MaxRatePoints + 1 }, protocol.CodeInvalidRules, "points"},
		{"per zero", func(r *protocol.RuleSet) { r.Per = 0 }, protocol.CodeInvalidRules, "per"},
		{"per negative", func(r *protocol.RuleSet) { r.Per = -100 }, protocol.CodeInvalidRules, "per"},
		{"per over max", func(r *protocol.RuleSet) { r.Per = protocol.MaxAmount + 1 }, protocol.CodeInvalidRules, "per"},
		{"rounding unknown", func(r *protocol.RuleSet) { r.Rounding = "half_even" }, protocol.CodeInvalidRules, "rounding"},
		{"rounding upper case", func(r *protocol.RuleSet) { r.Rounding = "DOWN" }, protocol.CodeInvalidRules, "rounding"},
		{"categories too many", func(r *protocol.RuleSet) { r.Categories = entries(protocol.MaxRuleEntries + 1) }, protocol.CodeInvalidRules, "categories"},
		{"skus too many", func(r *protocol.RuleSet) { r.SKUs = entries(protocol.MaxRuleEntries + 1) }, protocol.CodeInvalidRules, "skus"},
		{"category key invalid", func(r *protocol.RuleSet) { r.Categories = multipliers("dairy/milk", "2") }, protocol.CodeInvalidID, "categories"},
		{"category key empty", func(r *protocol.RuleSet) { r.Categories = multipliers("", "2") }, protocol.CodeInvalidID, "categories"},
		{"sku key invalid", func(r *protocol.RuleSet) { r.SKUs = multipliers("SKU 4711", "2") }, protocol.CodeInvalidID, "skus"},
		{"category multiplier invalid", func(r *protocol.RuleSet) { r.Categories = multipliers("dairy", "2.00001") }, protocol.CodeInvalidRules, "categories.dairy"},
		{"category multiplier empty", func(r *protocol.RuleSet) { r.Categories = multipliers("dairy", "") }, protocol.CodeInvalidRules, "categories.dairy"},
		{"sku multiplier over max", func(r *protocol.RuleSet) { r.SKUs = multipliers("SKU-4711", "100.0001") }, protocol.CodeInvalidRules, "skus.SKU-4711"},
		{"sku multiplier negative", func(r *protocol.RuleSet) { r.SKUs = multipliers("SKU-4711", "-1") }, protocol.CodeInvalidRules, "skus.SKU-4711"},
		{"campaigns too many", func(r *protocol.RuleSet) { r.Campaigns = nCampaigns(protocol.MaxCampaigns + 1) }, protocol.CodeInvalidRules, "campaigns"},
		{"campaign id empty", func(r *protocol.RuleSet) { r.Campaigns[0].ID = "" }, protocol.CodeMissingField, "campaigns[0].id"},
		{"campaign id invalid", func(r *protocol.RuleSet) { r.Campaigns[0].ID = "xmas#1" }, protocol.CodeInvalidID, "campaigns[0].id"},
		{"campaign name too long", func(r *protocol.RuleSet) { r.Campaigns[0].Name = strings.Repeat("n", 201) }, protocol.CodeInvalidRules, "campaigns[0].name"},
		{"campaign name newline", func(r *protocol.RuleSet) { r.Campaigns[0].Name = "Double\npoints" }, protocol.CodeInvalidRules, "campaigns[0].name"},
		{"campaign name del", func(r *protocol.RuleSet) { r.Campaigns[0].Name = "Double\x7f" }, protocol.CodeInvalidRules, "campaigns[0].name"},
		{"campaign from zero", func(r *protocol.RuleSet) { r.Campaigns[0].From = time.Time{} }, protocol.CodeInvalidRules, "campaigns[0]"},
		{"campaign to zero", func(r *protocol.RuleSet) { r.Campaigns[0].To = time.Time{} }, protocol.CodeInvalidRules, "campaigns[0]"},
		{"campaign empty window", func(r *protocol.RuleSet) { r.Campaigns[0].To = r.Campaigns[0].From }, protocol.CodeInvalidRules, "campaigns[0]"},
		{"campaign window backwards", func(r *protocol.RuleSet) {
			c := &r.Campaigns[0]
			c.From, c.To = c.To, c.From
		}, protocol.CodeInvalidRules, "campaigns[0]"},
		{"campaign without effect", func(r *protocol.RuleSet) { r.Campaigns[0].Multiplier, r.Campaigns[0].Bonus = "", 0 }, protocol.CodeInvalidRules, "campaigns[0]"},
		{"campaign multiplier invalid", func(r *protocol.RuleSet) { r.Campaigns[0].Multiplier = "2x" }, protocol.CodeInvalidRules, "campaigns[0].multiplier"},
		{"campaign multiplier over max", func(r *protocol.RuleSet) { r.Campaigns[0].Multiplier = "101" }, protocol.CodeInvalidRules, "campaigns[0].multiplier"},
		{"campaign multiplier below 1", func(r *protocol.RuleSet) { r.Campaigns[0].Multiplier = "0.5" }, protocol.CodeInvalidRules, "campaigns[0].multiplier"},
		{"campaign bonus negative", func(r *protocol.RuleSet) { r.Campaigns[0].Bonus = -1 }, protocol.CodeInvalidRules, "campaigns[0].bonus"},
		{"campaign bonus over max", func(r *protocol.RuleSet) { r.Campaigns[0].Bonus = protocol.MaxPoints + 1 }, protocol.CodeInvalidRules, "campaigns[0].bonus"},
		{"campaign min_amount negative", func(r *protocol.RuleSet) { r.Campaigns[0].MinAmount = -1 }, protocol.CodeInvalidRules, "campaigns[0].min_amount"},
		{"campaign min_amount over max", func(r *protocol.RuleSet) { r.Campaigns[0].MinAmount = protocol.MaxAmount + 1 }, protocol.CodeInvalidRules, "campaigns[0].min_amount"},
		{"second campaign invalid", func(r *protocol.RuleSet) {
			r.Campaigns = append(r.Campaigns, around("c2", "2", -5))
		}, protocol.CodeInvalidRules, "campaigns[1].bonus"},
		{"campaign index past 9", func(r *protocol.RuleSet) {
			r.Campaigns = nCampaigns(12)
			r.Campaigns[11].ID = ""
		}, protocol.CodeMissingField, "campaigns[11].id"},
		{"new partner bonus negative", func(r *protocol.RuleSet) { r.NewPartnerBonus = -1 }, protocol.CodeInvalidRules, "new_partner_bonus"},
		{"new partner bonus over max", func(r *protocol.RuleSet) { r.NewPartnerBonus = protocol.MaxPoints + 1 }, protocol.CodeInvalidRules, "new_partner_bonus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := validConfig().Rules[1]
			tc.mut(&r)
			checkErr(t, r.Validate(), tc.code, tc.field)
		})
	}
}
