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
			got, err := scanner.MemberID(tt.scan, scanner.CheckNone)
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

func TestMemberIDCheckDigitsAndGS1(t *testing.T) {
	tests := []struct {
		name  string
		scan  scanner.Scan
		check scanner.CheckDigit
		want  string
		code  protocol.Code // "" when valid
	}{
		{"luhn good", scanner.Scan{Symbology: "C0", Data: "79927398713"}, scanner.CheckLuhn, "79927398713", ""},
		{"luhn good, padded", scanner.Scan{Data: " 7000000000000005 "}, scanner.CheckLuhn, "7000000000000005", ""},
		{"luhn bad", scanner.Scan{Symbology: "C0", Data: "79927398710"}, scanner.CheckLuhn, "", protocol.CodeBadCheckDigit},
		{"luhn on letters", scanner.Scan{Data: "M-000123"}, scanner.CheckLuhn, "", protocol.CodeInvalidID},
		{"luhn on one digit", scanner.Scan{Data: "0"}, scanner.CheckLuhn, "", protocol.CodeInvalidID},
		{"mod11 good", scanner.Scan{Symbology: "E0", Data: "123456785"}, scanner.CheckMod11, "123456785", ""},
		{"mod11 check 11 written 0", scanner.Scan{Data: "1234560"}, scanner.CheckMod11, "1234560", ""},
		{"mod11 bad", scanner.Scan{Data: "123456784"}, scanner.CheckMod11, "", protocol.CodeBadCheckDigit},
		{"mod11 check 10 refused", scanner.Scan{Data: "60"}, scanner.CheckMod11, "", protocol.CodeBadCheckDigit},
		{"none takes anything valid", scanner.Scan{Data: "79927398710"}, scanner.CheckNone, "79927398710", ""},
		{"empty scheme is none", scanner.Scan{Data: "M-1"}, "", "M-1", ""},

		{"GS1 GSRN", scanner.Scan{Symbology: "d2", Data: "8018" + gsrn}, scanner.CheckMod11, gsrn, ""},
		{"GS1 GSRN after FNC1, no AIM", scanner.Scan{Data: gs + "8018" + gsrn + gs + "80191"}, scanner.CheckLuhn, gsrn, ""},
		{"GS1 GSRN among others", scanner.Scan{Symbology: "Q3", Data: "0109521234543213" + "8018" + gsrn}, scanner.CheckNone, gsrn, ""},
		{"GS1 GSRN that is Luhn-valid with a card prefix", scanner.Scan{Symbology: "C1", Data: "8018400638100000000026"}, scanner.CheckNone, "400638100000000026", ""},
		{"GS1 GSRN bad check digit", scanner.Scan{Symbology: "d2", Data: "8018123456789012345670"}, scanner.CheckNone, "", protocol.CodeBadCheckDigit},
		{"GS1 product label", scanner.Scan{Symbology: "C1", Data: "0109521234543213" + "17261231"}, scanner.CheckNone, "", protocol.CodeInvalidID},
		{"GS1 GTIN bad check digit", scanner.Scan{Symbology: "C1", Data: "0109521234543214"}, scanner.CheckNone, "", protocol.CodeInvalidID},
		{"GS1 malformed", scanner.Scan{Symbology: "e0", Data: "01\x1d21"}, scanner.CheckNone, "", protocol.CodeInvalidID},
		{"GS1 empty", scanner.Scan{Symbology: "d2"}, scanner.CheckNone, "", protocol.CodeInvalidID},

		{"card", scanner.Scan{Data: "4111111111111111"}, scanner.CheckNone, "", protocol.CodePaymentCard},
		{"card under luhn", scanner.Scan{Symbology: "C0", Data: "5555555555554444"}, scanner.CheckLuhn, "", protocol.CodePaymentCard},
		{"card under mod11", scanner.Scan{Data: "378282246310005"}, scanner.CheckMod11, "", protocol.CodePaymentCard},
		{"card in groups", scanner.Scan{Data: "4111 1111 1111 1111"}, scanner.CheckNone, "", protocol.CodePaymentCard},
		{"card track 2", scanner.Scan{Data: ";4111111111111111=25121010000000000000?"}, scanner.CheckNone, "", protocol.CodePaymentCard},
		{"card in a QR code", scanner.Scan{Symbology: "Q1", Data: "pan:6011111111111117"}, scanner.CheckNone, "", protocol.CodePaymentCard},
		{"card as a GS1 serial", scanner.Scan{Symbology: "d2", Data: "0109521234543213" + "214111111111111111"}, scanner.CheckNone, "", protocol.CodePaymentCard},
		{"card after FNC1, not GS1", scanner.Scan{Data: gs + "4111111111111111"}, scanner.CheckNone, "", protocol.CodePaymentCard},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scanner.MemberID(tt.scan, tt.check)
			if tt.code == "" {
				if err != nil || got != tt.want {
					t.Fatalf("MemberID = (%q, %v), want (%q, nil)", got, err, tt.want)
				}
				return
			}
			if err == nil || got != "" {
				t.Fatalf("MemberID = (%q, %v), want an error", got, err)
			}
			if !errors.Is(err, scanner.ErrNotMemberID) {
				t.Errorf("error %q does not wrap ErrNotMemberID", err)
			}
			if c := protocol.CodeOf(err); c != tt.code {
				t.Errorf("CodeOf(%q) = %q, want %q", err, c, tt.code)
			}
			if errors.Is(err, scanner.ErrPaymentCard) != (tt.code == protocol.CodePaymentCard) {
				t.Errorf("errors.Is(%q, ErrPaymentCard) is wrong", err)
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			window := 4
			if scanner.IsGS1(tt.scan) {
				window = 5 // the message may name a four-digit AI such as 8018
			}
			assertNoDigitsOf(t, msg, tt.scan.Data, window)
			t.Log(msg)
		})
	}
}

// assertNoDigitsOf fails when msg holds any window digits in a row of the
// digits of data: not the number, not a masked form (last four, first six).
func assertNoDigitsOf(t *testing.T, msg, data string, window int) {
	t.Helper()
	var digits strings.Builder
	for _, c := range data {
		if c >= '0' && c <= '9' {
			digits.WriteRune(c)
		}
	}
	d := digits.String()
	for i := 0; i+window <= len(d); i++ {
		if strings.Contains(msg, d[i:i+window]) {
			t.Errorf("%q contains digits %q of the scanned data", msg, d[i:i+window])
			return
		}
	}
}
