package scanner_test

import (
	"errors"
	"testing"

	"github.com/tillsync/tillsync/agent/scanner"
)

// The mod 11 examples are worked by hand (weights 2..7 from the right):
//
//	1234      4·2 + 3·3 + 2·4 + 1·5                         = 30;  30 mod 11 = 8; 11−8 = 3  → 12343
//	123456    6·2 + 5·3 + 4·4 + 3·5 + 2·6 + 1·7             = 77;  77 mod 11 = 0; 11−0 = 11 → 0 → 1234560
//	12345678  8·2 + 7·3 + 6·4 + 5·5 + 4·6 + 3·7 + 2·2 + 1·3 = 138; 138 mod 11 = 6; 11−6 = 5 → 123456785 (weights wrap after 7)
//	5         5·2 = 10; 11−10 = 1 → 51
//	1         1·2 = 2;  11−2 = 9  → 19
//	6         6·2 = 12; 12 mod 11 = 1; 11−1 = 10 → no check digit: refused
//	700012345 5·2+4·3+3·4+2·5+1·6+0·7+0·2+0·3+7·4 = 78; 78 mod 11 = 1 → 10: refused
func TestCheckDigitMod11(t *testing.T) {
	for _, tt := range []struct {
		payload string
		want    byte // 0: ErrNoCheckDigit
	}{
		{"1234", '3'},
		{"123456", '0'},
		{"12345678", '5'},
		{"5", '1'},
		{"1", '9'},
		{"6", 0},
		{"700012345", 0},
	} {
		got, err := scanner.CheckMod11.Compute(tt.payload)
		if tt.want == 0 {
			if !errors.Is(err, scanner.ErrNoCheckDigit) {
				t.Errorf("Compute(%q) = (%q, %v), want ErrNoCheckDigit", tt.payload, got, err)
			}
			for c := byte('0'); c <= '9'; c++ {
				if n := tt.payload + string(c); scanner.CheckMod11.Valid(n) {
					t.Errorf("Valid(%q) = true; a payload whose check would be 10 has no valid number", n)
				}
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Compute(%q) = (%q, %v), want %q", tt.payload, got, err, tt.want)
		}
		if n := tt.payload + string(tt.want); !scanner.CheckMod11.Valid(n) {
			t.Errorf("Valid(%q) = false", n)
		}
	}
}

func TestCheckDigitValid(t *testing.T) {
	for _, tt := range []struct {
		check  scanner.CheckDigit
		number string
		want   bool
	}{
		{scanner.CheckLuhn, "79927398713", true}, // the textbook example
		{scanner.CheckLuhn, "79927398710", false},
		{scanner.CheckLuhn, "79927398731", false}, // two digits swapped
		{scanner.CheckLuhn, "7000000000000005", true},
		{scanner.CheckLuhn, "18", true}, // 1·2 + 8 = 10
		{scanner.CheckLuhn, "0", false}, // too short to carry a check digit
		{scanner.CheckLuhn, "", false},
		{scanner.CheckLuhn, "7992739871X", false},
		{scanner.CheckMod11, "12343", true},
		{scanner.CheckMod11, "12344", false},
		{scanner.CheckMod11, "1234560", true},
		{scanner.CheckMod11, "123456785", true},
		{scanner.CheckMod11, "123456758", false},
		{scanner.CheckMod11, "51", true},
		{scanner.CheckMod11, "19", true},
		{scanner.CheckMod11, "M-12343", false},
		{scanner.CheckNone, "anything", true},
		{"", "anything", true},
	} {
		if got := tt.check.Valid(tt.number); got != tt.want {
			t.Errorf("%s.Valid(%q) = %v, want %v", tt.check, tt.number, got, tt.want)
		}
	}
}

// Every single-digit error and, for Luhn, almost every swap of neighbours
// is caught: the reason to have a check digit at all.
func TestCheckDigitCatchesTypos(t *testing.T) {
	for _, c := range []scanner.CheckDigit{scanner.CheckLuhn, scanner.CheckMod11} {
		for _, payload := range []string{"1234", "700012346", "31415926535"} {
			d, err := c.Compute(payload)
			if err != nil {
				t.Fatalf("%s.Compute(%q): %v", c, payload, err)
			}
			good := payload + string(d)
			for i := range len(good) {
				for x := byte('0'); x <= '9'; x++ {
					if x == good[i] {
						continue
					}
					bad := good[:i] + string(x) + good[i+1:]
					if c.Valid(bad) {
						t.Errorf("%s: %q is valid, a one-digit typo of %q", c, bad, good)
					}
				}
			}
		}
	}
}

func TestParseCheckDigit(t *testing.T) {
	for in, want := range map[string]scanner.CheckDigit{"": scanner.CheckNone, "none": scanner.CheckNone, "LUHN": scanner.CheckLuhn, "mod11": scanner.CheckMod11} {
		if got, err := scanner.ParseCheckDigit(in); err != nil || got != want {
			t.Errorf("ParseCheckDigit(%q) = (%q, %v), want %q", in, got, err, want)
		}
	}
	if _, err := scanner.ParseCheckDigit("mod10"); err == nil {
		t.Error("ParseCheckDigit(mod10) = nil error")
	}
}
