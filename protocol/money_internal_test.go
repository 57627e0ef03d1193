package protocol

import "testing"

// parseDecimal is the one parser behind multipliers and point values: no
// sign, no exponent, no spaces, no empty part, at most places decimals.
func TestParseDecimal(t *testing.T) {
	for _, tc := range []struct {
		s      string
		places int
		want   int64
	}{
		{"0", 0, 0},
		{"12", 0, 12},
		{"12", 2, 1200},
		{"1.5", 4, 15_000},
		{"0.0001", 4, 1},
		{"1.50", 2, 150},
		{"007", 0, 7},
		{"999999999999", 0, 999_999_999_999}, // twelve digits
		{"999999999999", 6, 999_999_999_999_000_000}, // eighteen: fits
		{"9.223372036854775807", 18, 1<<63 - 1},      // the largest int64
	} {
		got, err := parseDecimal(tc.s, tc.places)
		if err != nil || got != tc.want {
			t.Errorf("parseDecimal(%q, %d) = %d, %v; want %d", tc.s, tc.places, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		s      string
		places int
	}{
		{"", 2},
		{".", 2},
		{"1.", 2},
		{".5", 2},
		{"1.5", 0},
		{"1.234", 2},
		{"-1", 2},
		{"+1", 2},
		{"1e2", 2},
		{" 1", 2},
		{"1 ", 2},
		{"1.2.3", 4},
		{"1,5", 2},
		{"0x1", 2},
		{"١", 0},
		{"1\x00", 0},
		{"1000000000000", 0},         // thirteen digits before the point
		{"999999999999", 7},          // 19 digits: past int64
		{"9.223372036854775808", 18}, // one past the largest int64
	} {
		got, err := parseDecimal(tc.s, tc.places)
		if err == nil || got != 0 {
			t.Errorf("parseDecimal(%q, %d) = %d, %v; want an error", tc.s, tc.places, got, err)
			continue
		}
		if c := CodeOf(err); c != CodeMalformed {
			t.Errorf("parseDecimal(%q, %d): code %q, want malformed", tc.s, tc.places, c)
		}
	}
}
