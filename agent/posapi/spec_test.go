package posapi

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tillsync/tillsync/internal/httpx"
	"github.com/tillsync/tillsync/protocol"
)

type specDoc struct {
	Paths      map[string]map[string]any `yaml:"paths"`
	Components struct {
		Schemas map[string]specSchema `yaml:"schemas"`
	} `yaml:"components"`
}

type specSchema struct {
	Type       string                `yaml:"type"`
	Required   []string              `yaml:"required"`
	Properties map[string]specSchema `yaml:"properties"`
	Ref        string                `yaml:"$ref"`
}

func loadSpec(t *testing.T) specDoc {
	t.Helper()
	var d specDoc
	if err := yaml.Unmarshal(Spec, &d); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return d
}

// TestSpecRoutes: openapi.yaml describes exactly the routes the handler serves.
func TestSpecRoutes(t *testing.T) {
	d := loadSpec(t)
	var inSpec, served []string
	for path, ops := range d.Paths {
		for method := range ops {
			inSpec = append(inSpec, strings.ToUpper(method)+" "+path)
		}
	}
	for pattern := range (&api{}).routes() {
		served = append(served, pattern)
	}
	sort.Strings(inSpec)
	sort.Strings(served)
	if !slices.Equal(inSpec, served) {
		t.Errorf("openapi.yaml paths:\n  %s\nhandler routes:\n  %s", strings.Join(inSpec, "\n  "), strings.Join(served, "\n  "))
	}
}

// TestSpecSchemas: each schema has exactly the JSON fields of its Go type,
// and marks as required exactly those always present (no omitempty).
func TestSpecSchemas(t *testing.T) {
	d := loadSpec(t)
	types := map[string]any{
		"EarnRequest": EarnRequest{}, "BurnRequest": BurnRequest{}, "ReverseRequest": ReverseRequest{},
		"Result": Result{}, "Balance": Balance{}, "Health": Health{}, "Scanner": Scanner{},
		"HubRejection": HubRejection{}, "HubHeld": HubHeld{}, "OfflineExposure": OfflineExposure{},
		"ScanEvent": ScanEvent{}, "ScanError": ScanError{}, "Line": protocol.Line{}, "Error": httpx.ErrorBody{},
	}
	for name, v := range types {
		s, ok := d.Components.Schemas[name]
		if !ok {
			t.Errorf("openapi.yaml has no schema %s", name)
			continue
		}
		checkSchema(t, name, s, reflect.TypeOf(v))
	}
	var errBody specSchema = d.Components.Schemas["Error"].Properties["error"]
	checkSchema(t, "Error.error", errBody, reflect.TypeOf(httpx.ErrorBody{}.Error))
	if list := d.Components.Schemas["ScanList"]; list.Properties["scans"].Type != "array" {
		t.Errorf("ScanList.scans: %+v", list)
	}
}

func checkSchema(t *testing.T, name string, s specSchema, typ reflect.Type) {
	t.Helper()
	fields, required := jsonFields(typ, false)
	var props []string
	for p := range s.Properties {
		props = append(props, p)
	}
	sort.Strings(props)
	sort.Strings(fields)
	if !slices.Equal(props, fields) {
		t.Errorf("schema %s properties %v; %s has JSON fields %v", name, props, typ, fields)
	}
	req := slices.Clone(s.Required)
	sort.Strings(req)
	sort.Strings(required)
	if !slices.Equal(req, required) {
		t.Errorf("schema %s required %v; %s always has %v", name, req, typ, required)
	}
}

// jsonFields lists typ's JSON field names, and those always present: not
// omitempty or omitzero, and not inside an embedded pointer (absent when nil).
func jsonFields(typ reflect.Type, optional bool) (fields, required []string) {
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				f, r := jsonFields(et.Elem(), true)
				fields, required = append(fields, f...), append(required, r...)
				continue
			}
			f, r := jsonFields(et, optional)
			fields, required = append(fields, f...), append(required, r...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields = append(fields, name)
		if !optional && !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			required = append(required, name)
		}
	}
	return fields, required
}
