package protocol_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

// nVersions is a config carrying rule versions 1..n of its partner.
func nVersions(n int) []protocol.RuleSet {
	rules := make([]protocol.RuleSet, n)
	for i := range rules {
		rules[i] = validConfig().Rules[0]
		rules[i].Version = int64(i + 1)
		rules[i].EffectiveFrom = rules[i].EffectiveFrom.Add(time.Duration(i) * 24 * time.Hour)
	}
	return rules
}

// tokenKeys returns n distinct member token public keys, encoded.
func tokenKeys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = protocol.EncodeTokenKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(i + 1)}, ed25519.SeedSize)).Public().(ed25519.PublicKey))
	}
	return out
}

// An old config — one from before member tokens, without their keys —
// still decodes: the till then refuses tokens as unverifiable.
func TestConfigWithoutTokenKeys(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(golden, []byte("member_token_keys")) {
		t.Fatal("testdata/config.json must stay a config without member token keys")
	}
	c, err := protocol.DecodeConfig(golden)
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := c.TokenKeys(); err != nil || len(keys) != 0 {
		t.Errorf("TokenKeys of an old config = %v, %v", keys, err)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, mut := range map[string]func(*protocol.Config){
		"as in the golden file": func(c *protocol.Config) {},
		"version 1":             func(c *protocol.Config) { c.Version = 1 },
		"no rules":              func(c *protocol.Config) { c.Rules = nil },
		"one version":           func(c *protocol.Config) { c.Rules = c.Rules[1:] },
		"max versions":          func(c *protocol.Config) { c.Rules = nVersions(protocol.MaxRuleVersions) },
		"versions with gaps":    func(c *protocol.Config) { c.Rules[0].Version, c.Rules[1].Version = 3, 9 },
		"JPY":                   func(c *protocol.Config) { c.Currency, c.PointValue = "JPY", "1"; setCurrency(c, "JPY") },
		"KWD":                   func(c *protocol.Config) { c.Currency, c.PointValue = "KWD", "0.001"; setCurrency(c, "KWD") },
		"point value at max":    func(c *protocol.Config) { c.PointValue = "1000" },
		"a member token key":    func(c *protocol.Config) { c.MemberTokenKeys = tokenKeys(1) },
		"max member token keys": func(c *protocol.Config) { c.MemberTokenKeys = tokenKeys(protocol.MaxTokenKeys) },
		"no member token keys":  func(c *protocol.Config) { c.MemberTokenKeys = []string{} },
	} {
		c := validConfig()
		mut(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, err := protocol.DecodeConfig(encode(t, c)); err != nil {
			t.Errorf("%s: DecodeConfig: %v", name, err)
		}
	}

	for _, tc := range []struct {
		name  string
		mut   func(*protocol.Config)
		code  protocol.Code
		field string
	}{
		{"version 0", func(c *protocol.Config) { c.Version = 0 }, protocol.CodeUnsupported, "version"},
		{"version next", func(c *protocol.Config) { c.Version = protocol.Version + 1 }, protocol.CodeUnsupported, "version"},
		{"store empty", func(c *protocol.Config) { c.Store = "" }, protocol.CodeMissingField, "store"},
		{"store with slash", func(c *protocol.Config) { c.Store = "store/042" }, protocol.CodeInvalidID, "store"},
		{"partner empty", func(c *protocol.Config) { c.Partner = "" }, protocol.CodeMissingField, "partner"},
		{"partner wildcard", func(c *protocol.Config) { c.Partner = "#" }, protocol.CodeInvalidID, "partner"},
		{"currency empty", func(c *protocol.Config) { c.Currency = "" }, protocol.CodeInvalidCurrency, "currency"},
		{"currency lower case", func(c *protocol.Config) { c.Currency = "eur" }, protocol.CodeInvalidCurrency, "currency"},
		{"point value empty", func(c *protocol.Config) { c.PointValue = "" }, protocol.CodeInvalidAmount, "point_value"},
		{"point value zero", func(c *protocol.Config) { c.PointValue = "0" }, protocol.CodeInvalidAmount, "point_value"},
		{"point value negative", func(c *protocol.Config) { c.PointValue = "-0.01" }, protocol.CodeInvalidAmount, "point_value"},
		{"point value over max", func(c *protocol.Config) { c.PointValue = "1001" }, protocol.CodeInvalidAmount, "point_value"},
		{"point value too precise", func(c *protocol.Config) { c.PointValue = "0.000000001" }, protocol.CodeInvalidAmount, "point_value"},
		{"point value too precise for JPY", func(c *protocol.Config) { c.Currency, c.PointValue = "JPY", "0.0000001" }, protocol.CodeInvalidAmount, "point_value"},
		{"too many versions", func(c *protocol.Config) { c.Rules = nVersions(protocol.MaxRuleVersions + 1) }, protocol.CodeInvalidRules, "rules"},
		{"rule invalid", func(c *protocol.Config) { c.Rules[1].Per = 0 }, protocol.CodeInvalidRules, "rules[1].per"},
		{"rule partner missing", func(c *protocol.Config) { c.Rules[0].Partner = "" }, protocol.CodeMissingField, "rules[0].partner"},
		{"rule currency invalid", func(c *protocol.Config) { c.Rules[0].Currency = "euro" }, protocol.CodeInvalidCurrency, "rules[0].currency"},
		{"rule campaign invalid", func(c *protocol.Config) { c.Rules[1].Campaigns[0].Bonus = -1 }, protocol.CodeInvalidRules, "rules[1].campaigns[0].bonus"},
		{"rule multiplier invalid", func(c *protocol.Config) { c.Rules[1].SKUs["SKU-4711"] = "1.55555" }, protocol.CodeInvalidRules, "rules[1].skus.SKU-4711"},
		{"rules of another partner", func(c *protocol.Config) { c.Rules[1].Partner = "other_brand" }, protocol.CodeInvalidRules, "rules[1].partner"},
		{"rules of another partner first", func(c *protocol.Config) { c.Rules[0].Partner = "other_brand" }, protocol.CodeInvalidRules, "rules[0].partner"},
		{"versions unsorted", func(c *protocol.Config) { c.Rules[0], c.Rules[1] = c.Rules[1], c.Rules[0] }, protocol.CodeInvalidRules, "rules"},
		{"versions unsorted at the end", func(c *protocol.Config) {
			c.Rules = nVersions(5)
			c.Rules[3].Version, c.Rules[4].Version = 5, 4
		}, protocol.CodeInvalidRules, "rules"},
		{"member token key short", func(c *protocol.Config) { c.MemberTokenKeys = []string{"AAAA"} }, protocol.CodeInvalidTokenKey, "member_token_keys[0]"},
		{"member token key not base64", func(c *protocol.Config) { c.MemberTokenKeys = append(tokenKeys(1), "key!") }, protocol.CodeInvalidTokenKey, "member_token_keys[1]"},
		{"member token key twice", func(c *protocol.Config) { c.MemberTokenKeys = append(tokenKeys(2), tokenKeys(1)...) }, protocol.CodeInvalidTokenKey, "member_token_keys[2]"},
		{"too many member token keys", func(c *protocol.Config) { c.MemberTokenKeys = tokenKeys(protocol.MaxTokenKeys + 1) }, protocol.CodeInvalidTokenKey, "member_token_keys"},
		{"rule index past 9", func(c *protocol.Config) {
			c.Rules = nVersions(12)
			c.Rules[11].Currency = ""
		}, protocol.CodeInvalidCurrency, "rules[11].currency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mut(&c)
			checkErr(t, c.Validate(), tc.code, tc.field)
			got, err := protocol.DecodeConfig(encode(t, c))
			if got != nil {
				t.Errorf("DecodeConfig returned a config with error %v", err)
			}
			checkErr(t, err, tc.code, tc.field)
		})
	}
}

func TestDecodeConfigRefuses(t *testing.T) {
	valid := encode(t, validConfig())

	// Oversize: refused before parsing, even when the JSON is a valid config.
	var padded bytes.Buffer
	padded.Write(valid[:len(valid)-1])
	padded.WriteString(`,"padding":"` + strings.Repeat("x", protocol.MaxConfigBytes) + `"}`)
	for name, in := range map[string][]byte{
		"valid with an unknown field": padded.Bytes(),
		"valid padded one byte over":  pad(valid, protocol.MaxConfigBytes+1),
		"garbage one byte over":       pad([]byte("{"), protocol.MaxConfigBytes+1),
	} {
		got, err := protocol.DecodeConfig(in)
		if got != nil {
			t.Errorf("%s: returned a config", name)
		}
		t.Run(name, func(t *testing.T) { checkErr(t, err, protocol.CodeTooLarge, "") })
	}

	num := func(s string) json.Number { return json.Number(s) }
	cfg := validConfig()
	for _, tc := range []struct {
		val  any
		path []any
	}{
		{"2", []any{"version"}},
		{num("0.01"), []any{"point_value"}},
		{num("1"), []any{"store"}},
		{map[string]any{}, []any{"rules"}},
		{"v1", []any{"rules", 0}},
		{"1", []any{"rules", 0, "version"}},
		{"2026-12-01", []any{"rules", 1, "effective_from"}},
		{num("2"), []any{"rules", 1, "categories", "dairy"}},
		{[]any{"dairy"}, []any{"rules", 1, "categories"}},
		{num("1.5"), []any{"rules", 1, "skus", "SKU-4711"}},
		{num("1.5"), []any{"rules", 1, "points"}},
		{true, []any{"rules", 1, "rounding"}},
		{"soon", []any{"rules", 1, "campaigns", 0, "to"}},
		{"50", []any{"rules", 1, "campaigns", 0, "bonus"}},
		{num("1e3"), []any{"rules", 1, "new_partner_bonus"}},
		{"config", nil},
	} {
		in := withField(t, cfg, tc.val, tc.path...)
		got, err := protocol.DecodeConfig(in)
		if got != nil {
			t.Errorf("%s accepted", in)
			continue
		}
		if protocol.CodeOf(err) != protocol.CodeMalformed {
			t.Errorf("%v = %v: got %v, want malformed", tc.path, tc.val, err)
			continue
		}
		checkOneLine(t, err)
		if m := goTypeName.FindString(err.Error()); m != "" {
			t.Errorf("%v = %v: %q leaks Go detail %q", tc.path, tc.val, err, m)
		}
	}
}

// The config the hub publishes reaches the tills through DecodeConfig: a
// config of MaxRuleVersions versions, each like the golden one, must fit.
func TestMaxVersionsConfigFits(t *testing.T) {
	c := validConfig()
	c.Rules = nVersions(protocol.MaxRuleVersions)
	for i := range c.Rules {
		c.Rules[i] = validConfig().Rules[1]
		c.Rules[i].Version = int64(i + 1)
	}
	enc := encode(t, c)
	if len(enc) > protocol.MaxConfigBytes {
		t.Fatalf("%d versions are %d bytes, MaxConfigBytes is %d", len(c.Rules), len(enc), protocol.MaxConfigBytes)
	}
	if _, err := protocol.DecodeConfig(enc); err != nil {
		t.Fatal(err)
	}
}

func TestConfigTopic(t *testing.T) {
	for store, want := range map[string]string{
		"store-042": "tillsync/v1/stores/store-042/config",
		"s":         "tillsync/v1/stores/s/config",
	} {
		got, err := protocol.ConfigTopic(store)
		if err != nil || got != want {
			t.Errorf("ConfigTopic(%q) = %q, %v; want %q", store, got, err, want)
		}
		// A store topic is not a terminal topic: the terminal parser refuses it.
		if _, _, _, err := protocol.ParseTerminalTopic(got); protocol.CodeOf(err) != protocol.CodeMalformed {
			t.Errorf("ParseTerminalTopic(%q) = %v, want malformed", got, err)
		}
	}
	got, err := protocol.ConfigTopic("")
	if got != "" {
		t.Errorf("ConfigTopic(\"\") = %q", got)
	}
	checkErr(t, err, protocol.CodeMissingField, "store")
	for _, bad := range badIDs {
		got, err := protocol.ConfigTopic(bad.v)
		if got != "" {
			t.Errorf("ConfigTopic(%q) = %q", bad.v, got)
		}
		t.Run(bad.name, func(t *testing.T) { checkErr(t, err, protocol.CodeInvalidID, "store") })
	}
}

func setCurrency(c *protocol.Config, cur string) {
	for i := range c.Rules {
		c.Rules[i].Currency = cur
	}
}
