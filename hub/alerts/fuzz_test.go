package alerts_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/hub/alerts"
	"github.com/tillsync/tillsync/protocol/fuzzlimit"
)

// FuzzParse: whatever an alerts file holds, Parse answers with an error of
// one line or a config the evaluator and the sender can run: a positive
// interval, rules with distinct names, known conditions and severities and
// no negative durations or thresholds, opening hours with a time zone and
// spans within a day, webhooks with an http(s) URL and bounded queues.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../../docs/alerts.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, s := range []string{
		"rules:\n  - name: a\n    condition: store_offline\n    threshold: 5m\n",
		"every: 0s\n", "rulez: []\n", "webhooks:\n  - url: ftp://x\n", "webhooks:\n  - url: https://x.example/\n    queue: 9223372036854775807\n",
		"opening_hours:\n  - timezone: Mars/Olympus\n    days: {daily: \"00:00-24:00\"}\n",
		"opening_hours:\n  - timezone: UTC\n    days: {fri-mon: \"22:00-06:00\"}\n",
		"rules:\n  - name: r\n    condition: rejection_rate\n    threshold: NaN%\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzlimit.Check(t)
		c, err := alerts.Parse(data)
		if err != nil {
			if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("error is not one line: %q", msg)
			}
			if c != nil {
				t.Fatalf("a config with error %v", err)
			}
			return
		}
		if c.Every <= 0 {
			t.Fatalf("every %s", c.Every)
		}
		var names []string
		for _, r := range c.Rules {
			if r.Name == "" || slices.Contains(names, r.Name) {
				t.Fatalf("rule name %q empty or repeated", r.Name)
			}
			names = append(names, r.Name)
			known := []alerts.Condition{alerts.StoreOffline, alerts.OldestUnsynced, alerts.RejectionRate, alerts.OfflineExposure}
			if !slices.Contains(known, r.Condition) || (r.Severity != alerts.Info && r.Severity != alerts.Warning && r.Severity != alerts.Critical) {
				t.Fatalf("rule %+v", r)
			}
			if r.Threshold < 0 || r.Threshold != r.Threshold || r.ThresholdDur < 0 || r.For < 0 || r.RecoverFor < 0 || r.Window <= 0 || r.MinCount < 1 {
				t.Fatalf("rule %q: a negative duration or threshold: %+v", r.Name, r)
			}
		}
		for _, h := range c.Hours {
			if h.Location == nil {
				t.Fatal("opening hours without a time zone")
			}
			for d, spans := range h.Days {
				for _, s := range spans {
					if s.Start < 0 || s.Start >= s.End || s.End > 24*60 {
						t.Fatalf("day %d: span %+v", d, s)
					}
				}
			}
		}
		for _, w := range c.Webhooks {
			if !strings.HasPrefix(w.URL, "http://") && !strings.HasPrefix(w.URL, "https://") || w.Timeout <= 0 || w.Retries < 0 || w.Queue < 1 || w.Queue > 1_000_000 {
				t.Fatalf("webhook %+v", w)
			}
		}
	})
}
