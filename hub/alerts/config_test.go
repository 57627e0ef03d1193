package alerts_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/alerts"
)

func TestParseExample(t *testing.T) {
	data, err := os.ReadFile("../../docs/alerts.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := alerts.Parse(data)
	if err != nil {
		t.Fatalf("the documented example: %v", err)
	}
	if c.Hub != "hub-eu-1" || c.Every != 15*time.Second || len(c.Webhooks) != 1 || len(c.Rules) != 4 || len(c.Hours) != 2 {
		t.Fatalf("parsed %+v", c)
	}
	w := c.Webhooks[0]
	if w.Secret == "" || w.Bearer == "" || w.Timeout != 10*time.Second || w.Retries != 5 || w.Queue != 1000 {
		t.Errorf("webhook %+v", w)
	}
	r := c.Rules[0]
	if r.Name != "store-offline" || r.Condition != alerts.StoreOffline || r.ThresholdDur != 10*time.Minute || r.Threshold != 600 ||
		r.For != time.Minute || r.RecoverFor != 2*time.Minute || r.Severity != alerts.Critical || !r.Stores.All || r.Line == 0 {
		t.Errorf("rule 0 %+v", r)
	}
	if r := c.Rules[1]; r.RecoverFor != r.For || r.Stores.All || len(r.Stores.Stores) != 2 {
		t.Errorf("rule 1 %+v", r)
	}
	if r := c.Rules[2]; r.Threshold != 0.05 || r.Window != 15*time.Minute || r.MinCount != 20 || !r.Stores.Match("x", "bakery") || r.Stores.Match("x", "other") {
		t.Errorf("rule 2 %+v", r)
	}
	if r := c.Rules[3]; r.Threshold != 1 || r.For != 0 || !r.Stores.All || r.Severity != alerts.Critical {
		t.Errorf("rule 3 %+v", r)
	}
	h := c.Hours[0]
	if h.Location.String() != "Europe/Berlin" || len(h.Days[time.Monday]) != 1 || h.Days[time.Monday][0] != (alerts.Span{Start: 390, End: 1110}) || len(h.Days[time.Sunday]) != 0 {
		t.Errorf("hours %+v", h)
	}
}

func TestParseErrors(t *testing.T) {
	const good = "rules:\n  - name: a\n    condition: store_offline\n    threshold: 5m\n"
	for _, tc := range []struct {
		name, file, want string
	}{
		{"unknown top key", "rulez: []\n", `line 1: unknown key "rulez" in top level`},
		{"unknown rule key", good + "    severty: critical\n", `line 5: unknown key "severty" in a rule (allowed: condition, for,`},
		{"bad duration", good + "    for: 5 minutes\n", `line 5: "5 minutes" is not a duration`},
		{"bad threshold duration", "rules:\n  - name: a\n    condition: oldest_unsynced\n    threshold: soon\n", `line 4: threshold: "soon" is not a duration`},
		{"bad fraction", "rules:\n  - name: a\n    condition: rejection_rate\n    threshold: lots\n", `line 4: threshold: "lots" is not a share`},
		{"unknown condition", "rules:\n  - name: a\n    condition: store_on_fire\n    threshold: 1\n", `line 3: unknown condition "store_on_fire"`},
		{"missing threshold", "rules:\n  - name: a\n    condition: store_offline\n", `line 2: a rule: "threshold" is required`},
		{"duplicate name", good + "  - name: a\n    condition: store_offline\n    threshold: 1m\n", `line 5: a second rule named "a"`},
		{"bad severity", good + "    severity: meh\n", `line 5: unknown severity "meh"`},
		{"bad stores", good + "    stores: {brand: x}\n", `line 5: unknown key "brand" in stores`},
		{"bad zone", "opening_hours:\n  - timezone: Mars/Olympus\n    days: {daily: 08:00-20:00}\n", `line 2: unknown time zone "Mars/Olympus"`},
		{"bad day", "opening_hours:\n  - timezone: UTC\n    days: {mon-fry: 08:00-20:00}\n", `line 3: "mon-fry" is not a day`},
		{"bad hours", "opening_hours:\n  - timezone: UTC\n    days:\n      mon: 20:00-08:00\n", `line 4: "20:00-08:00" is not opening hours`},
		{"bad url", "webhooks:\n  - url: ftp://x\n", `line 2: "ftp://x" is not an http or https URL`},
		{"webhook unknown key", "webhooks:\n  - url: http://x\n    secrets: s\n", `line 3: unknown key "secrets" in a webhook`},
		{"yaml syntax", "rules: [\n", "line"},
		{"empty", "", "alerts file is empty"},
		{"not a mapping", "- a\n", "line 1: top level: a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := alerts.Parse([]byte(tc.file))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestOpeningHours(t *testing.T) {
	c, err := alerts.Parse([]byte(`opening_hours:
  - stores: [night]
    timezone: America/New_York
    days:
      fri: "18:00-24:00"
      sat: "00:00-02:00, 10:00-12:00"
`))
	if err != nil {
		t.Fatal(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	h := alerts.HoursFor(c.Hours, "night", "")
	if alerts.HoursFor(c.Hours, "day", "") != nil {
		t.Error("hours for a store not selected")
	}
	for _, tc := range []struct {
		at    time.Time
		open  bool
		since time.Time
	}{
		{time.Date(2026, 11, 20, 17, 59, 0, 0, ny), false, time.Time{}}, // Friday
		{time.Date(2026, 11, 20, 18, 0, 0, 0, ny), true, time.Date(2026, 11, 20, 18, 0, 0, 0, ny)},
		{time.Date(2026, 11, 21, 1, 30, 0, 0, ny), true, time.Date(2026, 11, 20, 18, 0, 0, 0, ny)}, // past midnight
		{time.Date(2026, 11, 21, 2, 0, 0, 0, ny), false, time.Time{}},
		{time.Date(2026, 11, 21, 11, 0, 0, 0, ny), true, time.Date(2026, 11, 21, 10, 0, 0, 0, ny)},
		{time.Date(2026, 11, 21, 16, 0, 0, 0, time.UTC), true, time.Date(2026, 11, 21, 10, 0, 0, 0, ny)}, // 11:00 in New York
	} {
		since, open := h.OpenSince(tc.at)
		if open != tc.open || !since.Equal(tc.since) {
			t.Errorf("at %v: open %v since %v, want %v %v", tc.at, open, since, tc.open, tc.since)
		}
	}
}

// The README's example rules file parses.
func TestParseREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "### Alerts\n")
	_, rest, ok2 := strings.Cut(rest, "```yaml\n")
	block, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("no yaml block under ### Alerts in the README")
	}
	c, err := alerts.Parse([]byte(block))
	if err != nil {
		t.Fatalf("the README's example: %v", err)
	}
	if len(c.Rules) != 4 || len(c.Webhooks) != 1 || len(c.Hours) != 1 || c.Rules[2].Threshold != 0.05 {
		t.Errorf("parsed %+v", c)
	}
}
