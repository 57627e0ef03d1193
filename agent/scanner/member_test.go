package scanner_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/agent/scanner"
	"github.com/tillsync/tillsync/protocol"
)

func TestMemberID(t *testing.T) {
	tests := []struct {
		name string
		scan scanner.Scan
		want string
		code protocol.Code // "" when valid
	}{
		{"plain", scanner.Scan{Data: "M-000123"}, "M-000123", ""},
		{"with symbology", scanner.Scan{Symbology: "Q1", Data: "card.42_x"}, "card.42_x", ""},
		{"padded with spaces", scanner.Scan{Symbology: "C0", Data: "  M7  "}, "M7", ""},
		{"longest", scanner.Scan{Data: strings.Repeat("a", protocol.MaxIDLen)}, strings.Repeat("a", protocol.MaxIDLen), ""},
		{"empty", scanner.Scan{Symbology: "E0"}, "", protocol.CodeMissingField},
		{"spaces only", scanner.Scan{Data: "   "}, "", protocol.CodeMissingField},
		{"too long", scanner.Scan{Data: strings.Repeat("a", protocol.MaxIDLen+1)}, "", protocol.CodeInvalidID},
		{"inner space", scanner.Scan{Data: "M 7"}, "", protocol.CodeInvalidID},
		{"url QR code", scanner.Scan{Symbology: "Q1", Data: "https://x.example/m/42"}, "", protocol.CodeInvalidID},
		{"MQTT wildcard", scanner.Scan{Data: "M#7"}, "", protocol.CodeInvalidID},
		{"GS1 separator", scanner.Scan{Symbology: "d2", Data: "01\x1d21"}, "", protocol.CodeInvalidID},
		{"dot dot", scanner.Scan{Data: ".."}, "", protocol.CodeInvalidID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scanner.MemberID(tt.scan)
			if tt.code == "" {
				if err != nil || got != tt.want {
					t.Fatalf("MemberID = (%q, %v), want (%q, nil)", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("MemberID = (%q, nil), want an error", got)
			}
			if got != "" {
				t.Errorf("MemberID returned id %q with an error", got)
			}
			if !errors.Is(err, scanner.ErrNotMemberID) {
				t.Errorf("error %q does not wrap ErrNotMemberID", err)
			}
			if c := protocol.CodeOf(err); c != tt.code {
				t.Errorf("CodeOf(error) = %q, want %q", c, tt.code)
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if d := strings.TrimSpace(tt.scan.Data); len(d) > 3 && strings.Contains(msg, d) {
				t.Errorf("error %q repeats the scanned data", msg)
			}
			t.Log(msg)
		})
	}
}
