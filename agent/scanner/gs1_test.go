package scanner_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/agent/scanner"
)

const gs = "\x1d"

// gsrn is an 18-digit GSRN with a valid GS1 mod 10 check digit, worked by
// hand: payload 12345678901234567, weights 3,1,3,… from the right:
// 7·3+6+5·3+4+3·3+2+1·3+0+9·3+8+7·3+6+5·3+4+3·3+2+1·3 = 155 → 10−5 = 5.
const gsrn = "123456789012345675"

func TestParseGS1(t *testing.T) {
	tests := []struct {
		name, data string
		want       string // GS1Data.String()
	}{
		{"GTIN alone", "0109521234543213", "(01)09521234543213"},
		{"FNC1 in first position", gs + "0109521234543213", "(01)09521234543213"},
		{"predefined lengths back to back", "0109521234543213" + "17261231" + "3103000750", "(01)09521234543213(17)261231(3103)000750"},
		{"variable length last", "0109521234543213" + "10AB-12", "(01)09521234543213(10)AB-12"},
		{"variable length then GS", "10AB-12" + gs + "17261231", "(10)AB-12(17)261231"},
		{"redundant GS after a predefined length", "0109521234543213" + gs + "21X7", "(01)09521234543213(21)X7"},
		{"trailing GS", "10LOT" + gs, "(10)LOT"},
		{"SSCC", "00106141411234567897", "(00)106141411234567897"},
		{"member GSRN", "8018" + gsrn, "(8018)" + gsrn},
		{"GSRN then service relation instance", "8018" + gsrn + gs + "801942", "(8018)" + gsrn + "(8019)42"},
		{"GLN (41x)", "4144006381000000" + "254A1", "(414)4006381000000(254)A1"},
		{"fixed length but not predefined needs GS", "2401-A" + gs + "7003" + "2612311230" + gs + "400PO/77", "(240)1-A(7003)2612311230(400)PO/77"},
		{"longest serial", "21" + strings.Repeat("z", 20), "(21)" + strings.Repeat("z", 20)},
		{"internal 9x up to 90", "99" + strings.Repeat("A", 90), "(99)" + strings.Repeat("A", 90)},
		{"CSET 82 punctuation", `10!"%&'()*+,-./:;<=>?_`, `(10)!"%&'()*+,-./:;<=>?_`},
		{"amount with currency", "3912978" + "1999", "(3912)9781999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := scanner.ParseGS1(tt.data)
			if err != nil {
				t.Fatalf("ParseGS1(%q): %v", tt.data, err)
			}
			if got := d.String(); got != tt.want {
				t.Errorf("ParseGS1(%q) = %s, want %s", tt.data, got, tt.want)
			}
		})
	}
}

func TestParseGS1Malformed(t *testing.T) {
	tests := []struct {
		name, data string
		reason     string // in the error
		badCheck   bool
	}{
		{"empty", "", "no element", false},
		{"only GS", gs + gs, "no element", false},
		{"unknown AI", "9", "unknown application identifier", false},
		{"unknown 4-digit AI", "3106123456", "unknown application identifier", false},
		{"letters for an AI", "AB123", "unknown application identifier", false},
		{"GTIN too short", "01095212345432", "needs 14 characters, has 12", false},
		{"GS inside a predefined length", "010952123" + gs + "4543213", "needs 14 characters, has 7", false},
		{"GTIN check digit", "0109521234543214", "wrong check digit", true},
		{"GSRN check digit", "8018123456789012345670", "wrong check digit", true},
		{"GSRN too short", "8018" + gsrn[:17], "needs 18 characters, has 17", false},
		{"GSRN without its separator", "8018" + gsrn + "801942", "needs 18 characters, has 24", false},
		{"letter in a date", "17261A31", "byte 4 of the value is not a digit", false},
		{"fixed length without its GS", "7003" + "2612311230" + "400PO", "needs 10 characters, has 15", false},
		{"lot too long", "10" + strings.Repeat("L", 21), "at most 20 characters, has 21", false},
		{"missing separator makes a lot too long", "10" + strings.Repeat("L", 19) + "17261231", "at most 20", false},
		{"empty variable value", "10" + gs + "17261231", "no value", false},
		{"AI with no value at the end", "0109521234543213" + "10", "no value", false},
		{"two separators", "10A" + gs + gs + "21B", "empty element between two separators", false},
		{"space is not CSET 82", "10A B", "byte 2 of the value is not allowed", false},
		{"non-ASCII", "10Aé", "byte 2 of the value is not allowed", false},
		{"CSET 39 is upper case", "8010abc", "byte 1 of the value is not allowed", false},
		{"trailing garbage", "0109521234543213" + "X", "unknown application identifier", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := scanner.ParseGS1(tt.data)
			if err == nil {
				t.Fatalf("ParseGS1(%q) = %s, want an error", tt.data, d)
			}
			if !errors.Is(err, scanner.ErrMalformedGS1) {
				t.Errorf("error %q does not wrap ErrMalformedGS1", err)
			}
			var ge *scanner.GS1Error
			if !errors.As(err, &ge) {
				t.Fatalf("error %q is no *GS1Error", err)
			}
			if ge.BadCheckDigit != tt.badCheck {
				t.Errorf("BadCheckDigit = %v, want %v", ge.BadCheckDigit, tt.badCheck)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not say %q", err, tt.reason)
			}
			if d != nil {
				t.Errorf("elements %s returned with an error", d)
			}
			t.Log(err)
		})
	}
}

func TestGS1DataGet(t *testing.T) {
	d, err := scanner.ParseGS1(gs + "0109521234543213" + "10L1" + gs + "8018" + gsrn)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := d.Get(scanner.AIGSRNRecipient); !ok || v != gsrn {
		t.Errorf("Get(8018) = (%q, %v)", v, ok)
	}
	if _, ok := d.Get("21"); ok {
		t.Error("Get(21) found an element that is not there")
	}
	if got := d.AIs(); !slices.Equal(got, []string{"01", "10", "8018"}) {
		t.Errorf("AIs() = %q", got)
	}
	if scanner.GS1AITitle("8018") != "GSRN - RECIPIENT" || scanner.GS1AITitle("01") != "GTIN" || scanner.GS1AITitle("14") != "" {
		t.Error("GS1AITitle gives the wrong titles")
	}
}

func TestIsGS1(t *testing.T) {
	for _, tt := range []struct {
		s    scanner.Scan
		want bool
	}{
		{scanner.Scan{Symbology: "C1", Data: "0109521234543213"}, true},
		{scanner.Scan{Symbology: "e0", Data: "0109521234543213"}, true},
		{scanner.Scan{Symbology: "d2", Data: "0109521234543213"}, true},
		{scanner.Scan{Symbology: "Q3", Data: "0109521234543213"}, true},
		{scanner.Scan{Data: gs + "0109521234543213"}, true},
		{scanner.Scan{Symbology: "C0", Data: "0109521234543213"}, false},
		{scanner.Scan{Symbology: "Q1", Data: "0109521234543213"}, false},
		{scanner.Scan{Symbology: "d1", Data: "M-1"}, false},
		{scanner.Scan{Data: "0109521234543213"}, false},
	} {
		if got := scanner.IsGS1(tt.s); got != tt.want {
			t.Errorf("IsGS1(%+v) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestSymbologyName(t *testing.T) {
	for sym, want := range map[string]string{
		"C0": "Code 128", "C1": "GS1-128", "E0": "EAN-13", "E4": "EAN-8", "Q1": "QR Code", "Q3": "GS1 QR Code",
		"d1": "Data Matrix", "d2": "GS1 DataMatrix", "e0": "GS1 DataBar", "A0": "Code 39", "I1": "Interleaved 2 of 5",
		"L0": "PDF417", "z0": "Aztec", "": "no AIM identifier", "W9": "unknown symbology",
	} {
		if got := scanner.SymbologyName(sym); got != want {
			t.Errorf("SymbologyName(%q) = %q, want %q", sym, got, want)
		}
	}
}
