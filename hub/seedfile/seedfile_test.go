package seedfile_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/seedfile"
	"github.com/tillsync/tillsync/protocol"
	"github.com/tillsync/tillsync/protocol/fuzzlimit"
)

// demoFile is the documented example seed.
const demoFile = "../../cmd/tillsync-sim/demo-coalition.yaml"

var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func openLedger(t *testing.T, dir string) *ledger.BoltStore {
	t.Helper()
	st, err := ledger.OpenBolt(filepath.Join(dir, "ledger.db"), ledger.BoltOptions{})
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	return st
}

func readDemo(t *testing.T) *ledger.Seed {
	t.Helper()
	data, err := os.ReadFile(demoFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := seedfile.Parse(data)
	if err != nil {
		t.Fatalf("Parse %s: %v", demoFile, err)
	}
	return s
}

// The demo file says what its comments say it does.
func TestDemoFile(t *testing.T) {
	s := readDemo(t)
	if s.Coalition != (ledger.Coalition{Name: "Demo Coalition", Currency: "EUR", PointValue: "0.01", ExpiryMonths: 24, HoldMinutes: 15, ReturnWaitDays: 7}) {
		t.Errorf("coalition %+v", s.Coalition)
	}
	var ids []string
	stores, terminals := 0, 0
	for _, p := range s.Partners {
		ids = append(ids, p.ID)
		if p.Rules == nil {
			t.Errorf("partner %s has no rules", p.ID)
		}
		if len(p.Stores) == 0 || len(p.Stores) > 2 {
			t.Errorf("partner %s has %d stores, want 1-2", p.ID, len(p.Stores))
		}
		for _, st := range p.Stores {
			stores++
			terminals += len(st.Terminals)
			if len(st.Terminals) == 0 {
				t.Errorf("store %s has no terminals", st.ID)
			}
		}
	}
	if want := []string{"greencross", "bean-bar", "roadfuel"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("partners %v, want %v", ids, want)
	}
	gc, bb, rf := s.Partners[0].Rules, s.Partners[1].Rules, s.Partners[2].Rules
	if gc.Categories["rx"] != "0" || gc.Categories["beauty"] != "2" || gc.SKUs["4006381333931"] != "3" {
		t.Errorf("greencross multipliers: categories %v skus %v", gc.Categories, gc.SKUs)
	}
	if len(gc.Campaigns) != 1 || gc.Campaigns[0].Multiplier != "2" ||
		!gc.Campaigns[0].From.Equal(time.Date(2026, 12, 10, 0, 0, 0, 0, time.UTC)) ||
		!gc.Campaigns[0].To.Equal(time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("greencross campaign %+v", gc.Campaigns)
	}
	if len(bb.Campaigns) != 1 || bb.Campaigns[0].Bonus != 20 || bb.Campaigns[0].MinAmount != 500 ||
		!bb.Campaigns[0].From.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) || bb.NewPartnerBonus != 100 {
		t.Errorf("bean-bar rules %+v", bb)
	}
	rates := map[string]bool{}
	roundings := map[protocol.Rounding]bool{}
	for _, r := range []*protocol.RuleSet{gc, bb, rf} {
		rates[strings.Join([]string{itoa(r.Points), itoa(r.Per)}, "/")] = true
		roundings[r.Rounding] = true
	}
	if len(rates) != 3 || len(roundings) != 3 {
		t.Errorf("rates %v roundings %v: want three different of each", rates, roundings)
	}
	if stores < 4 || terminals < 6 {
		t.Errorf("%d stores, %d terminals", stores, terminals)
	}
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

// The demo file loads into a real ledger; loading it again changes
// nothing, also after a reopen.
func TestDemoFileLoads(t *testing.T) {
	dir := t.TempDir()
	st := openLedger(t, dir)
	rep, err := st.LoadSeed(readDemo(t), now)
	if err != nil {
		t.Fatalf("LoadSeed: %v", err)
	}
	if rep != (ledger.SeedReport{Partners: 3, Stores: 5, Terminals: 7, Rules: 3}) {
		t.Errorf("first load: %+v", rep)
	}
	rep, err = st.LoadSeed(readDemo(t), now.Add(time.Hour))
	if err != nil {
		t.Fatalf("second LoadSeed: %v", err)
	}
	if rep != (ledger.SeedReport{}) {
		t.Errorf("second load changed %+v, want nothing", rep)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = openLedger(t, dir)
	defer st.Close()
	rep, err = st.LoadSeed(readDemo(t), now.Add(2*time.Hour))
	if err != nil || rep != (ledger.SeedReport{}) {
		t.Errorf("load after reopen: %+v, %v; want no change", rep, err)
	}
	c, _ := st.Coalition()
	if c.Currency != "EUR" || c.PointValue != "0.01" {
		t.Errorf("coalition %+v", c)
	}
	stores, _ := st.Stores()
	if len(stores) != 5 || stores[0].ID != "bb-central" || stores[0].Partner != "bean-bar" {
		t.Errorf("stores %+v", stores)
	}
	for _, p := range []string{"greencross", "bean-bar", "roadfuel"} {
		rs, err := st.Rules(p)
		if err != nil || len(rs) != 1 || rs[0].Version != 1 || rs[0].Currency != "EUR" {
			t.Errorf("rules of %s: %+v, %v", p, rs, err)
		}
	}
}

// YAML and JSON with the same content give the same seed, and the seed
// round-trips through its own JSON.
func TestYAMLAndJSONAgree(t *testing.T) {
	s := readDemo(t)
	js, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := seedfile.Parse(js)
	if err != nil {
		t.Fatalf("Parse(JSON): %v\n%s", err, js)
	}
	if !reflect.DeepEqual(fromJSON, s) {
		t.Fatalf("JSON gave\n%+v\nYAML gave\n%+v", fromJSON, s)
	}
}

func TestConversions(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		check    func(t *testing.T, s *ledger.Seed)
	}{
		{"unquoted decimals are taken as written", `
coalition: {currency: EUR, point_value: 0.010}
partners:
  - id: p1
    rules: {points: 1, per: 100, categories: {beauty: 2, half: 0.5, rx: 0}}
`, func(t *testing.T, s *ledger.Seed) {
			if s.Coalition.PointValue != "0.010" {
				t.Errorf("point_value %q, want the literal 0.010", s.Coalition.PointValue)
			}
			want := map[string]protocol.Multiplier{"beauty": "2", "half": "0.5", "rx": "0"}
			if !reflect.DeepEqual(s.Partners[0].Rules.Categories, want) {
				t.Errorf("categories %v, want %v", s.Partners[0].Rules.Categories, want)
			}
		}},
		{"map keys as written", `
partners:
  - id: p1
    rules:
      points: 1
      per: 100
      skus: {0012345: 2, 4006381333931: 3, 1.50: 1, true: 0, 2026-01-01: 1}
`, func(t *testing.T, s *ledger.Seed) {
			want := map[string]protocol.Multiplier{"0012345": "2", "4006381333931": "3", "1.50": "1", "true": "0", "2026-01-01": "1"}
			if !reflect.DeepEqual(s.Partners[0].Rules.SKUs, want) {
				t.Errorf("skus %v, want %v", s.Partners[0].Rules.SKUs, want)
			}
		}},
		{"numeric ids", `
partners:
  - id: 42
    stores: [{id: 0042, terminals: [1, 2]}]
`, func(t *testing.T, s *ledger.Seed) {
			p := s.Partners[0]
			if p.ID != "42" || p.Stores[0].ID != "0042" || !reflect.DeepEqual(p.Stores[0].Terminals, []string{"1", "2"}) {
				t.Errorf("partner %+v", p)
			}
		}},
		{"timestamps", `
partners:
  - id: p1
    rules:
      points: 1
      per: 100
      effective_from: 2026-12-01 09:30:00
      campaigns:
        - {id: a, from: 2026-12-01, to: "2026-12-02T10:00:00+01:00", bonus: 1}
        - {id: b, from: 2026-12-01T10:00:00.5Z, to: 2027-01-01T00:00:00+00:00, bonus: 1}
`, func(t *testing.T, s *ledger.Seed) {
			r := s.Partners[0].Rules
			for _, c := range []struct {
				got, want time.Time
			}{
				{r.EffectiveFrom, time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)},
				{r.Campaigns[0].From, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
				{r.Campaigns[0].To, time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)},
				{r.Campaigns[1].From, time.Date(2026, 12, 1, 10, 0, 0, 5e8, time.UTC)},
				{r.Campaigns[1].To, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
			} {
				if !c.got.Equal(c.want) {
					t.Errorf("time %v, want %v", c.got, c.want)
				}
			}
		}},
		{"integers in YAML's other spellings", `
partners: [{id: p1, rules: {points: 0x10, per: 1_000}}]
`, func(t *testing.T, s *ledger.Seed) {
			if r := s.Partners[0].Rules; r.Points != 16 || r.Per != 1000 {
				t.Errorf("points %d per %d", r.Points, r.Per)
			}
		}},
		{"anchors, aliases and merge keys", `
partners:
  - id: p1
    rules: &std {points: 1, per: 100, rounding: down}
  - id: p2
    rules: *std
  - id: p3
    rules:
      per: 50
      <<: *std
`, func(t *testing.T, s *ledger.Seed) {
			r1, r2, r3 := s.Partners[0].Rules, s.Partners[1].Rules, s.Partners[2].Rules
			if !reflect.DeepEqual(r1, r2) || r1.Per != 100 || r3.Per != 50 || r3.Points != 1 || r3.Rounding != protocol.RoundDown {
				t.Errorf("rules %+v %+v %+v", r1, r2, r3)
			}
		}},
		{"nulls are zero values", `
coalition: ~
partners:
  - id: p1
    name:
    stores: ~
`, func(t *testing.T, s *ledger.Seed) {
			if s.Coalition != (ledger.Coalition{}) || s.Partners[0].Name != "" || s.Partners[0].Stores != nil {
				t.Errorf("seed %+v", s)
			}
		}},
		{"JSON", `{"coalition":{"currency":"EUR","point_value":"0.01"},"partners":[{"id":"p1","rules":{"points":1,"per":100}}]}`,
			func(t *testing.T, s *ledger.Seed) {
				if s.Coalition.Currency != "EUR" || s.Partners[0].Rules.Per != 100 {
					t.Errorf("seed %+v", s)
				}
			}},
		{"JSON that YAML cannot read", `{"coalition":{"name":"A\/B","currency":"EUR","point_value":"0.01"}}`,
			func(t *testing.T, s *ledger.Seed) {
				if s.Coalition.Name != "A/B" {
					t.Errorf("name %q", s.Coalition.Name)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := seedfile.Parse([]byte(tc.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tc.check(t, s)
		})
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		code     protocol.Code
		wants    []string
	}{
		{"empty", "", protocol.CodeMalformed, []string{"empty"}},
		{"only a comment", "# nothing\n", protocol.CodeMalformed, []string{"empty"}},
		{"null document", "~\n", protocol.CodeMalformed, []string{"empty"}},
		{"unknown top-level key", "coalition: {}\npartner: []\n", protocol.CodeMalformed,
			[]string{`unknown key "partner"`, "line 2", `did you mean "partners"`, "coalition, partners"}},
		{"misspelt nested key", "partners:\n  - id: p1\n    stores:\n      - id: s1\n        nmae: x\n", protocol.CodeMalformed,
			[]string{"partners[0].stores[0]", "line 5", `unknown key "nmae"`, `did you mean "name"`}},
		{"misspelt coalition key", "coalition:\n  pointvalue: 0.01\n", protocol.CodeMalformed,
			[]string{"coalition", `unknown key "pointvalue"`, `"point_value"`}},
		{"misspelt rules key", "partners: [{id: p1, rules: {points: 1, per: 100, catgories: {}}}]", protocol.CodeMalformed,
			[]string{"partners[0].rules", `"catgories"`, `"categories"`}},
		{"campaign key", "partners: [{id: p1, rules: {campaigns: [{id: c, multplier: 2}]}}]", protocol.CodeMalformed,
			[]string{"partners[0].rules.campaigns[0]", `"multplier"`}},
		{"duplicate key", "coalition:\n  currency: EUR\n  currency: USD\n", protocol.CodeMalformed,
			[]string{"coalition", `"currency" appears twice`, "line 3", "line 2"}},
		{"syntax", "coalition: [\n", protocol.CodeMalformed, []string{"line"}},
		{"two documents", "coalition: {}\n---\ncoalition: {}\n", protocol.CodeMalformed, []string{"more than one document"}},
		{"text for a number", "partners: [{id: p1, rules: {points: ten}}]", protocol.CodeMalformed,
			[]string{"partners[0].rules.points", `"ten" is not a whole number`}},
		{"quoted number", "partners: [{id: p1, rules: {per: \"100\"}}]", protocol.CodeMalformed,
			[]string{"partners[0].rules.per", "without quotes"}},
		{"fraction for a whole number", "coalition: {expiry_months: 1.5}", protocol.CodeMalformed,
			[]string{"coalition.expiry_months", "whole number"}},
		{"list for a mapping", "coalition: [a]", protocol.CodeMalformed, []string{"coalition", "list where a mapping"}},
		{"mapping for a list", "partners: {id: p1}", protocol.CodeMalformed, []string{"partners", "mapping where a list"}},
		{"scalar for a mapping", "partners: [{id: p1, rules: yes}]", protocol.CodeMalformed, []string{"partners[0].rules", "mapping"}},
		{"not a time", "partners: [{id: p1, rules: {campaigns: [{from: soon}]}}]", protocol.CodeMalformed,
			[]string{"partners[0].rules.campaigns[0].from", `"soon" is not a time`}},
		{"a merge of itself", "partners: [&p {id: x, <<: *p}]", protocol.CodeMalformed, []string{"partners[0]", "includes itself"}},
		{"a merge of a list", "coalition: {<<: [a]}", protocol.CodeMalformed, []string{"coalition", "merge a mapping"}},
		{"a key that is a list", "coalition: {[a]: b}", protocol.CodeMalformed, []string{"coalition", "plain text"}},
		{"a top-level list", "- a\n- b\n", protocol.CodeMalformed, []string{"list where a mapping"}},
		{"a top-level scalar", "hello\n", protocol.CodeMalformed, []string{"mapping"}},
		{"JSON unknown field", `{"coalition":{"name":"A\/B"},"extra":1}`, protocol.CodeMalformed, []string{`unknown key "extra"`}},
		{"JSON wrong type", `{"coalition":{"name":"A\/B","expiry_months":"x"}}`, protocol.CodeMalformed, []string{"coalition.expiry_months", "whole number"}},
		{"JSON trailing value", `{"coalition":{"name":"A\/B"}} {}`, protocol.CodeMalformed, []string{"more than one"}},
		{"too large", "# " + strings.Repeat("x", seedfile.MaxBytes), protocol.CodeTooLarge, []string{"at most 1048576"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := seedfile.Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", s)
			}
			if got := protocol.CodeOf(err); got != tc.code {
				t.Errorf("code %q, want %q (%v)", got, tc.code, err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range tc.wants {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

// Every prefix of the demo file and a few mangled versions parse or fail
// cleanly: never a panic, always a protocol error.
func FuzzParse(f *testing.F) {
	data, err := os.ReadFile(demoFile)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"coalition":{"currency":"EUR"}}`))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("partners: [{<<: {id: x}, id: y}]"))
	f.Add([]byte("partners: [&p {id: x, <<: *p}]"))
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzlimit.Check(t)
		s, err := seedfile.Parse(in)
		if err != nil {
			if protocol.CodeOf(err) == protocol.CodeInternal {
				t.Fatalf("not a protocol error: %v", err)
			}
			return
		}
		if s == nil {
			t.Fatal("nil seed without an error")
		}
	})
}

// FuzzParseRules: whatever a rules file holds, ParseRules answers with a
// protocol error of one line or a rule set, and a rule set it reads
// written out as JSON reads back the same.
func FuzzParseRules(f *testing.F) {
	for _, s := range []string{
		"points: 1\nper: 100\nrounding: nearest\ncategories: {rx: 0, beauty: 2}\nskus: {0012345: 1.5}\n" +
			"campaigns:\n  - {id: xmas, from: 2026-12-10, to: 2026-12-24, multiplier: 2}\nnew_partner_bonus: 100\neffective_from: 2027-01-01T00:00:00Z\n",
		`{"currency":"EUR","points":1,"per":100,"categories":{"a":"0.25"}}`,
		"points: 1\nper: 100\ncatgories: {}\n", "coalition: {}\n", "", "points: [1]\n", "skus: {a: 1e400}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzlimit.Check(t)
		rs, err := seedfile.ParseRules(in)
		if err != nil {
			if c := protocol.CodeOf(err); c == "" || c == protocol.CodeInternal || strings.Contains(err.Error(), "\n") {
				t.Fatalf("not a protocol error of one line: %q (%q)", err, c)
			}
			return
		}
		enc, err := json.Marshal(rs)
		if err != nil {
			t.Fatalf("a rule set read does not encode: %v", err)
		}
		back, err := seedfile.ParseRules(enc)
		if err != nil {
			t.Fatalf("%s, written out, does not read back: %v", enc, err)
		}
		if enc2, _ := json.Marshal(back); !bytes.Equal(enc, enc2) {
			t.Fatalf("%s reads back as %s", enc, enc2)
		}
	})
}

func TestParseRules(t *testing.T) {
	rs, err := seedfile.ParseRules([]byte(`
# greencross-rules.yaml
points: 1
per: 100
rounding: nearest
categories: {rx: 0, beauty: 2}
skus: {0012345: 1.5}
campaigns:
  - {id: xmas, from: 2026-12-10, to: 2026-12-24, multiplier: 2}
new_partner_bonus: 100
effective_from: 2027-01-01T00:00:00Z
`))
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.RuleSet{
		Points: 1, Per: 100, Rounding: protocol.RoundNearest,
		Categories:      map[string]protocol.Multiplier{"rx": "0", "beauty": "2"},
		SKUs:            map[string]protocol.Multiplier{"0012345": "1.5"},
		Campaigns:       []protocol.Campaign{{ID: "xmas", From: time.Date(2026, 12, 10, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC), Multiplier: "2"}},
		NewPartnerBonus: 100,
		EffectiveFrom:   time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	if !reflect.DeepEqual(*rs, want) {
		t.Fatalf("rules\n got %+v\nwant %+v", *rs, want)
	}
	for in, wants := range map[string][]string{
		"points: 1\nper: 100\ncatgories: {}\n": {`unknown key "catgories"`, `did you mean "categories"`, "line 3"},
		"coalition: {}\n":                      {`unknown key "coalition"`},
		"":                                     {"rules file is empty"},
	} {
		_, err := seedfile.ParseRules([]byte(in))
		if err == nil || protocol.CodeOf(err) != protocol.CodeMalformed {
			t.Errorf("ParseRules(%q): %v, want malformed", in, err)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseRules(%q): %q does not mention %q", in, err, w)
			}
		}
	}
}

// Aliases that multiply (a "billion laughs") are refused quickly, not
// expanded: here a thousand partners of a thousand stores of a thousand
// terminals, from a few kilobytes.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("partners:\n  - id: p0\n    stores: &ss\n      - &s {id: s0, terminals: &t [")
	b.WriteString(strings.Repeat("x, ", 999) + "x]}\n")
	b.WriteString(strings.Repeat("      - *s\n", 999))
	b.WriteString("  - &p {id: p1, stores: *ss}\n")
	b.WriteString(strings.Repeat("  - *p\n", 998))
	start := time.Now()
	_, err := seedfile.Parse([]byte(b.String()))
	if d := time.Since(start); err == nil || d > 5*time.Second {
		t.Fatalf("alias bomb of %d bytes: %v after %s", b.Len(), err, d)
	}
	if !strings.Contains(err.Error(), "too many") {
		t.Errorf("alias bomb: %v", err)
	}
}
