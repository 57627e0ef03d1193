package scanner_test

import (
	"testing"

	"github.com/tillsync/tillsync/agent/scanner"
)

func TestParseAIM(t *testing.T) {
	tests := []struct {
		frame, sym, data string
	}{
		{"]E0123", "E0", "123"},
		{"]E04006381333931", "E0", "4006381333931"},
		{"]C0ABC-1", "C0", "ABC-1"},
		{"]C1010123456789012815", "C1", "010123456789012815"},
		{"]Q1https://x.example/m/42", "Q1", "https://x.example/m/42"},
		{"]d2\x1d0104006381333931", "d2", "\x1d0104006381333931"},
		{"]e0", "e0", ""},
		{"]zZ9", "zZ", "9"},
		{"]A9]E0", "A9", "]E0"}, // only one identifier, at the start
		{"M-000123", "", "M-000123"},
		{"", "", ""},
		{"]", "", "]"},
		{"]E", "", "]E"},
		{"]0E123", "", "]0E123"},   // code must be a letter
		{"]E-123", "", "]E-123"},   // modifier must be alphanumeric
		{"]é0123", "", "]é0123"},   // non-ASCII is not a code character
		{" ]E0123", "", " ]E0123"}, // not at the start
		{"[E0123", "", "[E0123"},
	}
	for _, tt := range tests {
		t.Run(tt.frame, func(t *testing.T) {
			sym, data := scanner.ParseAIM([]byte(tt.frame))
			if sym != tt.sym || string(data) != tt.data {
				t.Errorf("ParseAIM(%q) = (%q, %q), want (%q, %q)", tt.frame, sym, data, tt.sym, tt.data)
			}
		})
	}
}
