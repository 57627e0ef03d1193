// Package alerts is the hub's alerting: rules read from a YAML file
// (tillsync-hub serve --alerts FILE), an evaluator that checks them against
// the hub's current facts about each store, and a webhook sender that
// posts a notice when an alert fires and again when it resolves.
//
// The evaluator reads the hub through Source, so that what it knows can
// grow (the tills' retained status, for their offline exposure) without
// touching the rules. An alert is one rule for one store: it fires once its
// condition has held for the rule's for-duration, and resolves once the
// condition has been false for its recover-for duration, so a store that
// flaps sends nothing until it settles; each transition sends exactly one
// notice. Notices go to a bounded queue per webhook: a slow or failing
// receiver is retried with backoff and never holds up the evaluation.
package alerts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Condition is what a rule watches.
type Condition string

// The conditions.
const (
	// StoreOffline: no terminal of the store is connected, and it has been
	// so for longer than the threshold (a duration) within the store's
	// opening hours — time while it was closed does not count.
	StoreOffline Condition = "store_offline"
	// OldestUnsynced: a terminal of the store reported, with its last
	// batch, an unsynced transaction older than the threshold (a duration).
	OldestUnsynced Condition = "oldest_unsynced"
	// RejectionRate: of the store's transactions answered over the rule's
	// window, the share rejected is above the threshold (a fraction, 0.05
	// or 5%), once at least min_count were answered.
	RejectionRate Condition = "rejection_rate"
	// OfflineExposure: the points the store's tills approved offline and
	// have not synced are above the threshold share of their cap (100%:
	// above the cap).
	OfflineExposure Condition = "offline_exposure"
)

var conditions = []Condition{StoreOffline, OldestUnsynced, RejectionRate, OfflineExposure}

// Severity says how urgent an alert is: info, warning or critical.
type Severity string

// The severities.
const (
	Info     Severity = "info"
	Warning  Severity = "warning"
	Critical Severity = "critical"
)

// Config is an alert rules file.
type Config struct {
	// Hub names this hub in every notice; default the host name, set by
	// the caller.
	Hub string
	// Every is how often the rules are evaluated; default 15s.
	Every time.Duration
	// Hours are the stores' opening hours, for store_offline; the first
	// that matches a store applies. A store none matches is always open.
	Hours []Hours
	// Webhooks receive every notice.
	Webhooks []Webhook
	// Rules are the alert rules.
	Rules []Rule
}

// Rule is one alert rule.
type Rule struct {
	// Name names the alert in notices and on the dashboard; unique.
	Name      string
	Condition Condition
	// Threshold is a duration for store_offline and oldest_unsynced, a
	// fraction for rejection_rate and offline_exposure.
	Threshold float64
	// ThresholdDur is the threshold as a duration, for the conditions that
	// take one.
	ThresholdDur time.Duration
	// For is how long the condition must hold before the alert fires.
	For time.Duration
	// RecoverFor is how long it must be false before a firing alert
	// resolves; default For.
	RecoverFor time.Duration
	// Window is the span rejection_rate counts over; default 15m.
	Window time.Duration
	// MinCount is the fewest transactions answered within the window for
	// rejection_rate to judge; default 10.
	MinCount int64
	Severity Severity
	// Stores selects the stores the rule watches.
	Stores Selector
	// Line is where the rule starts in its file.
	Line int
}

// Selector picks stores: all of them, a partner's, or a list.
type Selector struct {
	All      bool
	Partners []string
	Stores   []string
}

// Match reports whether the selector picks the store.
func (s Selector) Match(store, partner string) bool {
	return s.All || slices.Contains(s.Stores, store) || (partner != "" && slices.Contains(s.Partners, partner))
}

// Hours are opening hours for some stores, in a time zone.
type Hours struct {
	Stores   Selector
	Location *time.Location
	// Days[time.Weekday] are the day's open spans (none: closed all day).
	Days [7][]Span
}

// Span is an open span of a day, in minutes from midnight; End may be
// 24*60.
type Span struct{ Start, End int }

// Webhook is a URL notices are posted to.
type Webhook struct {
	URL string
	// Secret keys the HMAC-SHA256 signature of the body, sent in the
	// X-Tillsync-Signature header as sha256=HEX.
	Secret string
	// Bearer, when set, is sent as Authorization: Bearer ….
	Bearer string
	// Headers are sent with every request.
	Headers map[string]string
	// Timeout bounds one attempt; default 10s.
	Timeout time.Duration
	// Retries is how many times a failed delivery is tried again; default 5.
	Retries int
	// Queue bounds the notices waiting for this webhook; default 1000.
	Queue int
}

// Defaults.
const (
	DefaultEvery    = 15 * time.Second
	DefaultWindow   = 15 * time.Minute
	DefaultMinCount = 10
	DefaultTimeout  = 10 * time.Second
	DefaultRetries  = 5
	DefaultQueue    = 1000
	// MaxFileBytes is the largest rules file read.
	MaxFileBytes = 1 << 20
)

// Parse reads an alert rules file. Every error is one line naming the
// line of the file it is about; unknown keys are errors, never ignored.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("alerts file is %d bytes, at most %d", len(data), MaxFileBytes)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("alerts file is empty")
		}
		return nil, errors.New(oneLine(strings.TrimPrefix(err.Error(), "yaml: ")))
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	c := &Config{Every: DefaultEvery}
	err := fields(root, "top level", map[string]func(*yaml.Node) error{
		"hub":   func(n *yaml.Node) error { return str(n, &c.Hub) },
		"every": func(n *yaml.Node) error { return duration(n, &c.Every, false) },
		"opening_hours": func(n *yaml.Node) error {
			return list(n, func(n *yaml.Node) error {
				h, err := parseHours(n)
				c.Hours = append(c.Hours, h)
				return err
			})
		},
		"webhooks": func(n *yaml.Node) error {
			return list(n, func(n *yaml.Node) error {
				w, err := parseWebhook(n)
				c.Webhooks = append(c.Webhooks, w)
				return err
			})
		},
		"rules": func(n *yaml.Node) error {
			return list(n, func(n *yaml.Node) error {
				r, err := parseRule(n)
				if err == nil && slices.ContainsFunc(c.Rules, func(o Rule) bool { return o.Name == r.Name }) {
					err = errAt(n, "a second rule named %q", r.Name)
				}
				c.Rules = append(c.Rules, r)
				return err
			})
		},
	}, nil)
	if err != nil {
		return nil, err
	}
	if c.Every <= 0 {
		return nil, errAt(root, "every: must be positive")
	}
	return c, nil
}

func errAt(n *yaml.Node, format string, a ...any) error {
	return fmt.Errorf("line %d: %s", max(n.Line, 1), fmt.Sprintf(format, a...))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// fields walks a mapping, calling set[key] for each key; a key not in set
// is an error naming the keys allowed. required keys must be present.
func fields(n *yaml.Node, what string, set map[string]func(*yaml.Node) error, required []string) error {
	if n.Kind != yaml.MappingNode {
		return errAt(n, "%s: a mapping (key: value) is wanted", what)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := set[k.Value]
		if f == nil {
			keys := make([]string, 0, len(set))
			for k := range set {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			return errAt(k, "unknown key %q in %s (allowed: %s)", k.Value, what, strings.Join(keys, ", "))
		}
		if seen[k.Value] {
			return errAt(k, "%q given twice", k.Value)
		}
		seen[k.Value] = true
		if err := f(v); err != nil {
			if strings.HasPrefix(err.Error(), "line ") {
				return err
			}
			return errAt(v, "%s: %v", k.Value, err)
		}
	}
	for _, r := range required {
		if !seen[r] {
			return errAt(n, "%s: %q is required", what, r)
		}
	}
	return nil
}

func list(n *yaml.Node, each func(*yaml.Node) error) error {
	if n.Kind != yaml.SequenceNode {
		return errAt(n, "a list is wanted")
	}
	for _, e := range n.Content {
		if err := each(e); err != nil {
			return err
		}
	}
	return nil
}

func str(n *yaml.Node, dst *string) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return errAt(n, "a text value is wanted")
	}
	*dst = n.Value
	return nil
}

func strs(n *yaml.Node, dst *[]string) error {
	if n.Kind == yaml.ScalarNode {
		var s string
		if err := str(n, &s); err != nil {
			return err
		}
		*dst = append(*dst, s)
		return nil
	}
	return list(n, func(n *yaml.Node) error {
		var s string
		err := str(n, &s)
		*dst = append(*dst, s)
		return err
	})
}

func duration(n *yaml.Node, dst *time.Duration, zeroOK bool) error {
	var s string
	if err := str(n, &s); err != nil {
		return err
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || (d == 0 && !zeroOK) {
		return errAt(n, "%q is not a duration (e.g. 90s, 10m, 1h30m)", s)
	}
	*dst = d
	return nil
}

func integer(n *yaml.Node, dst *int64, min int64) error {
	var s string
	if err := str(n, &s); err != nil {
		return err
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < min {
		return errAt(n, "%q is not a whole number of at least %d", s, min)
	}
	*dst = v
	return nil
}

// fraction reads 0.05 or 5%.
func fraction(n *yaml.Node, dst *float64) error {
	var s string
	if err := str(n, &s); err != nil {
		return err
	}
	t, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if pct {
		v /= 100
	}
	if err != nil || v < 0 || v != v {
		return errAt(n, "%q is not a share (e.g. 0.05 or 5%%)", s)
	}
	*dst = v
	return nil
}

// selector reads stores: all | [ids] | {partner: X} | {partners: [...], stores: [...]}.
func selector(n *yaml.Node, dst *Selector) error {
	if n.Kind == yaml.ScalarNode && n.Value == "all" {
		dst.All = true
		return nil
	}
	if n.Kind == yaml.SequenceNode {
		return strs(n, &dst.Stores)
	}
	if n.Kind != yaml.MappingNode {
		return errAt(n, `stores: "all", a list of store ids, or a mapping with partner/partners/stores`)
	}
	err := fields(n, "stores", map[string]func(*yaml.Node) error{
		"partner":  func(n *yaml.Node) error { return strs(n, &dst.Partners) },
		"partners": func(n *yaml.Node) error { return strs(n, &dst.Partners) },
		"stores":   func(n *yaml.Node) error { return strs(n, &dst.Stores) },
	}, nil)
	if err == nil && len(dst.Partners) == 0 && len(dst.Stores) == 0 {
		err = errAt(n, "stores: names no partner and no store")
	}
	return err
}

func parseRule(n *yaml.Node) (Rule, error) {
	r := Rule{Line: n.Line, Window: DefaultWindow, MinCount: DefaultMinCount, Severity: Warning, Stores: Selector{All: true}}
	var threshold *yaml.Node
	recover := false
	err := fields(n, "a rule", map[string]func(*yaml.Node) error{
		"name": func(n *yaml.Node) error { return str(n, &r.Name) },
		"condition": func(n *yaml.Node) error {
			var s string
			if err := str(n, &s); err != nil {
				return err
			}
			r.Condition = Condition(s)
			if !slices.Contains(conditions, r.Condition) {
				return errAt(n, "unknown condition %q (one of store_offline, oldest_unsynced, rejection_rate, offline_exposure)", s)
			}
			return nil
		},
		"threshold": func(n *yaml.Node) error { threshold = n; return nil },
		"for":       func(n *yaml.Node) error { return duration(n, &r.For, true) },
		"recover_for": func(n *yaml.Node) error {
			recover = true
			return duration(n, &r.RecoverFor, true)
		},
		"window":    func(n *yaml.Node) error { return duration(n, &r.Window, false) },
		"min_count": func(n *yaml.Node) error { return integer(n, &r.MinCount, 1) },
		"severity": func(n *yaml.Node) error {
			var s string
			if err := str(n, &s); err != nil {
				return err
			}
			r.Severity = Severity(s)
			if r.Severity != Info && r.Severity != Warning && r.Severity != Critical {
				return errAt(n, "unknown severity %q (info, warning or critical)", s)
			}
			return nil
		},
		"stores": func(n *yaml.Node) error { r.Stores = Selector{}; return selector(n, &r.Stores) },
	}, []string{"name", "condition", "threshold"})
	if err != nil {
		return r, err
	}
	if r.Name == "" {
		return r, errAt(n, "a rule's name is empty")
	}
	switch r.Condition {
	case StoreOffline, OldestUnsynced:
		err = duration(threshold, &r.ThresholdDur, true)
		r.Threshold = r.ThresholdDur.Seconds()
	default:
		err = fraction(threshold, &r.Threshold)
	}
	if err != nil {
		return r, errAt(threshold, "threshold: %s", strings.SplitN(err.Error(), ": ", 2)[1])
	}
	if !recover {
		r.RecoverFor = r.For
	}
	return r, nil
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// parseHours reads
//
//	stores: all | [ids] | {partner: X}
//	timezone: Europe/Berlin
//	days: {mon-fri: "08:00-20:00", sat: "09:00-13:00, 14:00-18:00", sun: closed}
func parseHours(n *yaml.Node) (Hours, error) {
	h := Hours{Stores: Selector{All: true}, Location: time.UTC}
	err := fields(n, "opening hours", map[string]func(*yaml.Node) error{
		"stores": func(n *yaml.Node) error { h.Stores = Selector{}; return selector(n, &h.Stores) },
		"timezone": func(n *yaml.Node) error {
			var s string
			if err := str(n, &s); err != nil {
				return err
			}
			loc, err := time.LoadLocation(s)
			if err != nil || s == "" {
				return errAt(n, "unknown time zone %q (an IANA name such as Europe/Berlin)", s)
			}
			h.Location = loc
			return nil
		},
		"days": func(n *yaml.Node) error {
			if n.Kind != yaml.MappingNode {
				return errAt(n, "days: a mapping such as mon-fri: 08:00-20:00 is wanted")
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				days, err := parseDays(k)
				if err != nil {
					return err
				}
				var s string
				if err := str(v, &s); err != nil {
					return err
				}
				spans, err := parseSpans(v, s)
				if err != nil {
					return err
				}
				for _, d := range days {
					h.Days[d] = append(h.Days[d], spans...)
				}
			}
			return nil
		},
	}, []string{"timezone", "days"})
	return h, err
}

func parseDays(k *yaml.Node) ([]time.Weekday, error) {
	bad := errAt(k, "%q is not a day or days (mon … sun, mon-fri, or daily)", k.Value)
	s := strings.ToLower(k.Value)
	if s == "daily" {
		return []time.Weekday{0, 1, 2, 3, 4, 5, 6}, nil
	}
	from, to, ok := strings.Cut(s, "-")
	a, okA := dayNames[from]
	if !ok {
		if !okA {
			return nil, bad
		}
		return []time.Weekday{a}, nil
	}
	b, okB := dayNames[to]
	if !okA || !okB {
		return nil, bad
	}
	var out []time.Weekday
	for d := a; ; d = (d + 1) % 7 {
		out = append(out, d)
		if d == b {
			return out, nil
		}
	}
}

func parseSpans(n *yaml.Node, s string) ([]Span, error) {
	if strings.TrimSpace(s) == "closed" {
		return nil, nil
	}
	var out []Span
	for _, part := range strings.Split(s, ",") {
		from, to, ok := strings.Cut(strings.TrimSpace(part), "-")
		a, errA := clockMinutes(from)
		b, errB := clockMinutes(to)
		if !ok || errA != nil || errB != nil || b <= a {
			return nil, errAt(n, "%q is not opening hours (e.g. 08:00-20:00, 09:00-13:00, 14:00-18:00, or closed)", s)
		}
		out = append(out, Span{a, b})
	}
	return out, nil
}

func clockMinutes(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh*60+mm > 24*60 {
		return 0, errors.New("bad time")
	}
	return hh*60 + mm, nil
}

func parseWebhook(n *yaml.Node) (Webhook, error) {
	w := Webhook{Timeout: DefaultTimeout, Retries: DefaultRetries, Queue: DefaultQueue}
	var retries, queue int64 = DefaultRetries, DefaultQueue
	err := fields(n, "a webhook", map[string]func(*yaml.Node) error{
		"url": func(n *yaml.Node) error {
			if err := str(n, &w.URL); err != nil {
				return err
			}
			u, err := url.Parse(w.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return errAt(n, "%q is not an http or https URL", w.URL)
			}
			return nil
		},
		"secret":  func(n *yaml.Node) error { return str(n, &w.Secret) },
		"bearer":  func(n *yaml.Node) error { return str(n, &w.Bearer) },
		"timeout": func(n *yaml.Node) error { return duration(n, &w.Timeout, false) },
		"retries": func(n *yaml.Node) error { return integer(n, &retries, 0) },
		"queue":   func(n *yaml.Node) error { return integer(n, &queue, 1) },
		"headers": func(n *yaml.Node) error {
			if n.Kind != yaml.MappingNode {
				return errAt(n, "headers: a mapping of header names to values is wanted")
			}
			w.Headers = map[string]string{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				var v string
				if err := str(n.Content[i+1], &v); err != nil {
					return err
				}
				w.Headers[n.Content[i].Value] = v
			}
			return nil
		},
	}, []string{"url"})
	w.Retries, w.Queue = int(min(retries, 100)), int(min(queue, 1_000_000))
	return w, err
}
