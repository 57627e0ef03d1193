// Package seedfile reads a coalition seed — the coalition's settings, its
// partners with their stores, terminals and earn rules — from a YAML or JSON
// file, for `tillsync-hub serve --seed`, `tillsync-hub seed` and POST /v1/seed;
// and, by the same rules, one partner's rule set for `tillsync-hub rules set`.
//
// The file uses exactly the field names of the JSON API (snake_case, as in
// ledger.Seed), so what an operator writes by hand and what a script sends
// are the same document. YAML is read into a node tree, turned into JSON and
// decoded strictly into ledger.Seed: an unknown or misspelt key is an error
// naming the key, where it is and the keys allowed there, never silently
// ignored. On the way, the conversions YAML needs are made explicit:
//
//   - map keys are taken as written (SKU 0012345 stays "0012345", never 12345);
//   - timestamps (2026-12-01, 2026-12-01T09:00:00+01:00) become RFC 3339 strings;
//   - where the API wants text (point_value, multipliers, ids), an unquoted
//     number is taken literally — point_value: 0.01 is "0.01", never a float.
//
// Parsing only reads; ledger.Store.LoadSeed (or AddRules) checks the values
// and applies them.
package seedfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// MaxBytes is the largest seed or rules file accepted (1 MiB).
const MaxBytes = 1 << 20

// Parse reads a seed in YAML or JSON. Errors are *protocol.Error: CodeTooLarge
// over MaxBytes, CodeMalformed otherwise, with the field path (e.g.
// partners[1].stores[0]) and the line, in one line of text.
func Parse(data []byte) (*ledger.Seed, error) {
	var s ledger.Seed
	if err := decode(data, "seed", &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ParseRules reads one rule set (a protocol.RuleSet, as POST
// /v1/partners/{partner}/rules takes it) in YAML or JSON, by the same rules
// as Parse.
func ParseRules(data []byte) (*protocol.RuleSet, error) {
	var rs protocol.RuleSet
	if err := decode(data, "rules file", &rs); err != nil {
		return nil, err
	}
	return &rs, nil
}

// decode reads YAML or JSON into v, a pointer to a struct.
func decode(data []byte, what string, v any) error {
	if len(data) > MaxBytes {
		return protocol.Errorf(protocol.CodeTooLarge, "", "the %s is %d bytes, at most %d", what, len(data), MaxBytes)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return protocol.Errorf(protocol.CodeMalformed, "", "the %s is empty", what)
		}
		if looksLikeJSON(data) {
			// Valid JSON that YAML refuses (an escape such as \/): read it as JSON.
			return decodeJSON(data, what, v)
		}
		return protocol.Errorf(protocol.CodeMalformed, "", "%s", oneLine(strings.TrimPrefix(err.Error(), "yaml: ")))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return protocol.Errorf(protocol.CodeMalformed, "", "line %d: more than one document; a %s is one document", max(extra.Line, 1), what)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == 0 || root.ShortTag() == "!!null" {
		return protocol.Errorf(protocol.CodeMalformed, "", "the %s is empty", what)
	}
	// Aliases may repeat a node many times over (a "billion laughs"): allow
	// a few times what the file could hold without them.
	c := converter{seen: map[*yaml.Node]bool{}, budget: 4*len(data) + 10_000}
	tree, err := c.convert(root, reflect.TypeOf(v).Elem(), "")
	if err != nil {
		return err
	}
	js, err := json.Marshal(tree)
	if err != nil {
		return protocol.Errorf(protocol.CodeMalformed, "", "%v", err)
	}
	return decodeJSON(js, what, v)
}

// decodeJSON decodes JSON strictly into v. For YAML input it is the final
// check after convert (which already reports unknown keys with their line);
// for JSON that YAML cannot read it is the whole parse.
func decodeJSON(data []byte, what string, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return protocol.Errorf(protocol.CodeMalformed, "", "more than one JSON value; a %s is one object", what)
	}
	return nil
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return protocol.Errorf(protocol.CodeMalformed, te.Field, "a JSON %s where %s is wanted", te.Value, kindName(te.Type))
	case errors.As(err, &se):
		return protocol.Errorf(protocol.CodeMalformed, "", "not valid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return protocol.Errorf(protocol.CodeMalformed, "", "unknown key %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe
	}
	return protocol.Errorf(protocol.CodeMalformed, "", "%s", oneLine(strings.TrimPrefix(err.Error(), "json: ")))
}

func looksLikeJSON(data []byte) bool {
	d := bytes.TrimLeft(data, " \t\r\n")
	return len(d) > 0 && d[0] == '{'
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

var timeType = reflect.TypeFor[time.Time]()

// converter turns a YAML node tree into values encoding/json writes, guided
// by the Go type the JSON will be decoded into (nil: unknown, convert
// generically and let the strict decode refuse it).
type converter struct {
	// seen guards against alias cycles (&a [*a]).
	seen map[*yaml.Node]bool
	// budget is how many more nodes may be converted.
	budget int
}

func (c *converter) convert(n *yaml.Node, t reflect.Type, path string) (any, error) {
	if c.budget--; c.budget < 0 {
		return nil, errAt(n, path, "aliases expand to too many values")
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.convert(n.Content[0], t, path)
	case yaml.AliasNode:
		if c.seen[n] {
			return nil, errAt(n, path, "an alias that refers to itself")
		}
		c.seen[n] = true
		defer delete(c.seen, n)
		return c.convert(n.Alias, t, path)
	case yaml.MappingNode:
		return c.mapping(n, t, path)
	case yaml.SequenceNode:
		return c.sequence(n, t, path)
	case yaml.ScalarNode:
		return scalar(n, t, path)
	}
	return nil, errAt(n, path, "unexpected YAML node")
}

func (c *converter) mapping(n *yaml.Node, t reflect.Type, path string) (any, error) {
	var fields map[string]reflect.Type // struct target: json name → type
	var elem reflect.Type              // map target: value type
	switch {
	case t == nil || t.Kind() == reflect.Interface:
	case t.Kind() == reflect.Struct && t != timeType:
		fields = jsonFields(t)
	case t.Kind() == reflect.Map:
		elem = t.Elem()
	default:
		return nil, errAt(n, path, "a mapping where %s is wanted", kindName(t))
	}
	out := map[string]any{}
	lines := map[string]int{}
	var add func(m *yaml.Node, merged bool) error
	add = func(m *yaml.Node, merged bool) error {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				// <<: *defaults, or <<: [*a, *b]: keys not set here come from there.
				src := v
				if src.Kind == yaml.AliasNode {
					src = src.Alias
				}
				srcs := []*yaml.Node{src}
				if src.Kind == yaml.SequenceNode {
					srcs = src.Content
				}
				for _, s := range srcs {
					if s.Kind == yaml.AliasNode {
						s = s.Alias
					}
					if s.Kind != yaml.MappingNode {
						return errAt(v, path, "<< must merge a mapping")
					}
					if c.seen[s] {
						return errAt(v, path, "a merge that includes itself")
					}
					if c.budget -= len(s.Content); c.budget < 0 {
						return errAt(v, path, "aliases expand to too many values")
					}
					c.seen[s] = true
					err := add(s, true)
					delete(c.seen, s)
					if err != nil {
						return err
					}
				}
				continue
			}
			if k.Kind != yaml.ScalarNode {
				return errAt(k, path, "a key must be plain text")
			}
			key := k.Value // as written: never a number or a date
			if line, dup := lines[key]; dup {
				if merged {
					continue // the mapping's own key wins over a merged one
				}
				return errAt(k, path, "key %q appears twice (also on line %d)", key, line)
			}
			var vt reflect.Type
			switch {
			case fields != nil:
				ft, ok := fields[key]
				if !ok {
					return unknownKey(k, path, key, fields)
				}
				vt = ft
			case elem != nil:
				vt = elem
			}
			val, err := c.convert(v, vt, join(path, key))
			if err != nil {
				return err
			}
			out[key], lines[key] = val, k.Line
		}
		return nil
	}
	// The mapping's own keys first, so that they win over merged ones
	// whatever the order they are written in.
	own := &yaml.Node{Kind: yaml.MappingNode}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Kind == yaml.ScalarNode && n.Content[i].ShortTag() == "!!merge" {
			merges = append(merges, n.Content[i], n.Content[i+1])
		} else {
			own.Content = append(own.Content, n.Content[i], n.Content[i+1])
		}
	}
	if err := add(own, false); err != nil {
		return nil, err
	}
	if err := add(&yaml.Node{Kind: yaml.MappingNode, Content: merges}, true); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *converter) sequence(n *yaml.Node, t reflect.Type, path string) (any, error) {
	var elem reflect.Type
	switch {
	case t == nil || t.Kind() == reflect.Interface:
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		elem = t.Elem()
	default:
		return nil, errAt(n, path, "a list where %s is wanted", kindName(t))
	}
	out := make([]any, 0, len(n.Content))
	for i, item := range n.Content {
		v, err := c.convert(item, elem, path+"["+strconv.Itoa(i)+"]")
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// scalar converts one YAML scalar for a target of type t.
func scalar(n *yaml.Node, t reflect.Type, path string) (any, error) {
	tag := n.ShortTag()
	if tag == "!!null" {
		return nil, nil
	}
	switch {
	case t == timeType:
		if tag != "!!timestamp" && tag != "!!str" {
			return nil, errAt(n, path, "%q is not a time; write RFC 3339 (2026-12-01T09:00:00Z) or a date (2026-12-01)", n.Value)
		}
		var tm time.Time
		if err := n.Decode(&tm); err != nil {
			return nil, errAt(n, path, "%q is not a time; write RFC 3339 (2026-12-01T09:00:00Z) or a date (2026-12-01)", n.Value)
		}
		return tm.Format(time.RFC3339Nano), nil
	case t != nil && t.Kind() == reflect.String:
		// Text as written: an unquoted 0.01 or 2 is the decimal "0.01" or "2".
		return n.Value, nil
	case t != nil && (t.Kind() == reflect.Struct || t.Kind() == reflect.Map):
		return nil, errAt(n, path, "%q where a mapping is wanted", n.Value)
	case t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		return nil, errAt(n, path, "%q where a list is wanted", n.Value)
	case t != nil && t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		var v any
		if tag == "!!str" {
			if _, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
				return nil, errAt(n, path, "%q is quoted; write the number without quotes", n.Value)
			}
		}
		if tag != "!!int" || n.Decode(&v) != nil {
			return nil, errAt(n, path, "%q is not a whole number", n.Value)
		}
		return v, nil
	case t != nil && t.Kind() == reflect.Bool:
		if tag != "!!bool" {
			return nil, errAt(n, path, "%q is not true or false", n.Value)
		}
		return n.Value == "true", nil
	}
	switch tag {
	case "!!int", "!!float", "!!bool":
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, errAt(n, path, "%q: %v", n.Value, err)
		}
		return v, nil
	case "!!timestamp":
		var tm time.Time
		if err := n.Decode(&tm); err != nil {
			return nil, errAt(n, path, "%q is not a time", n.Value)
		}
		return tm.Format(time.RFC3339Nano), nil
	}
	return n.Value, nil
}

// jsonFields maps a struct's JSON field names to their types, following
// embedded structs as encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					if _, ok := out[k]; !ok {
						out[k] = v
					}
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func unknownKey(k *yaml.Node, path, key string, fields map[string]reflect.Type) error {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	slices.Sort(names)
	hint := ""
	if s := closest(key, names); s != "" {
		hint = fmt.Sprintf(" (did you mean %q?)", s)
	}
	return errAt(k, path, "unknown key %q%s; allowed here: %s", key, hint, strings.Join(names, ", "))
}

// closest returns the name within edit distance 2 of key (ignoring case), if any.
func closest(key string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(key), n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func errAt(n *yaml.Node, path, format string, args ...any) error {
	return protocol.Errorf(protocol.CodeMalformed, path, "line %d: %s", n.Line, fmt.Sprintf(format, args...))
}

// kindName says what a Go type is, in a seed author's words.
func kindName(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return "a time"
	case t.Kind() == reflect.String:
		return "text"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "a whole number"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Struct || t.Kind() == reflect.Map:
		return "a mapping"
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		return "a list"
	}
	return t.Kind().String()
}
