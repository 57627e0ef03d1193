package protocol_test

import (
	"testing"

	"github.com/tillsync/tillsync/protocol"
)

func TestCurrencyExponent(t *testing.T) {
	for _, tc := range []struct {
		code string
		want int
	}{
		{"EUR", 2}, {"USD", 2}, {"GBP", 2}, {"CHF", 2},
		{"JPY", 0}, {"KRW", 0}, {"ISK", 0}, {"CLP", 0}, {"XOF", 0},
		{"KWD", 3}, {"BHD", 3}, {"TND", 3}, {"OMR", 3},
		{"CLF", 4}, {"UYW", 4},
		{"XXX", 2}, {"", 2}, {"jpy", 2},
	} {
		if got := protocol.CurrencyExponent(tc.code); got != tc.want {
			t.Errorf("CurrencyExponent(%q) = %d, want %d", tc.code, got, tc.want)
		}
	}
}

func TestParsePointValue(t *testing.T) {
	for _, tc := range []struct {
		s, currency string
		want        int64
	}{
		// One cent, one yen, one fils: a million millionths of a minor unit.
		{"0.01", "EUR", 1_000_000},
		{"1", "JPY", 1_000_000},
		{"0.001", "KWD", 1_000_000},
		{"0.0001", "CLF", 1_000_000},
		{"0.005", "EUR", 500_000},
		{"0.0125", "USD", 1_250_000},
		{"1", "EUR", 100_000_000},
		{"0.00000001", "EUR", 1}, // six places beyond the cent
		{"0.000001", "JPY", 1},
		{"0.000000001", "KWD", 1},
		{"1000", "EUR", 1000 * 100 * 1_000_000}, // MaxPointValue
		{"1000.00000000", "EUR", 1000 * 100 * 1_000_000},
		{"1000", "JPY", 1000 * 1_000_000},
		{"1000", "KWD", 1000 * 1000 * 1_000_000},
	} {
		got, err := protocol.ParsePointValue(tc.s, tc.currency)
		if err != nil || got != tc.want {
			t.Errorf("ParsePointValue(%q, %s) = %d, %v; want %d", tc.s, tc.currency, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ s, currency string }{
		{"0", "EUR"},
		{"0.00", "EUR"},
		{"0.00000000", "EUR"},
		{"0", "JPY"},
		{"1001", "EUR"},
		{"1000.00000001", "EUR"},
		{"1000.000001", "JPY"},
		{"999999999999", "EUR"},
		{"0.000000001", "EUR"}, // seven places beyond the cent
		{"0.0000001", "JPY"},
		{"0.0000000001", "KWD"},
		{"", "EUR"},
		{"-0.01", "EUR"},
		{"+0.01", "EUR"},
		{".01", "EUR"},
		{"0.", "EUR"},
		{"0,01", "EUR"},
		{"1e-2", "EUR"},
		{" 0.01", "EUR"},
		{"0.01 ", "EUR"},
		{"0.01EUR", "EUR"},
		{"NaN", "EUR"},
	} {
		got, err := protocol.ParsePointValue(tc.s, tc.currency)
		if got != 0 {
			t.Errorf("ParsePointValue(%q, %s) = %d with error %v", tc.s, tc.currency, got, err)
		}
		t.Run("", func(t *testing.T) { checkErr(t, err, protocol.CodeInvalidAmount, "point_value") })
	}
}

func TestFormatMinor(t *testing.T) {
	for _, tc := range []struct {
		v        int64
		currency string
		want     string
	}{
		{1234, "EUR", "12.34"},
		{-5, "EUR", "-0.05"},
		{0, "EUR", "0.00"},
		{5, "EUR", "0.05"},
		{50, "EUR", "0.50"},
		{100, "EUR", "1.00"},
		{-1234, "EUR", "-12.34"},
		{-100, "EUR", "-1.00"},
		{1234, "JPY", "1234"},
		{0, "JPY", "0"},
		{-7, "JPY", "-7"},
		{1, "KWD", "0.001"},
		{1234, "KWD", "1.234"},
		{-1000, "KWD", "-1.000"},
		{1, "CLF", "0.0001"},
		{1234, "XXX", "12.34"},
		{1<<63 - 1, "EUR", "92233720368547758.07"},
		{-1 << 63, "EUR", "-92233720368547758.08"},
		{-1 << 63, "JPY", "-9223372036854775808"},
	} {
		if got := protocol.FormatMinor(tc.v, tc.currency); got != tc.want {
			t.Errorf("FormatMinor(%d, %s) = %q, want %q", tc.v, tc.currency, got, tc.want)
		}
	}
}
