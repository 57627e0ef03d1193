package protocol

import (
	"strconv"
	"strings"
)

// CurrencyExponent returns the number of minor-unit digits of an ISO 4217
// currency: 2 for EUR (cents), 0 for JPY, 3 for KWD. Currencies not listed
// have 2.
func CurrencyExponent(code string) int {
	switch code {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	case "CLF", "UYW":
		return 4
	}
	return 2
}

// PointValueScale is the fixed-point scale of a point value: millionths of a
// minor unit, so a point can be worth a fraction of a cent exactly.
const PointValueScale = 1_000_000

// MaxPointValue bounds a point value, in major units.
const MaxPointValue = 1000

// ParsePointValue parses what one point is worth, a decimal in major units
// of currency ("0.01" EUR is one cent), into millionths of a minor unit
// (1,000,000 for one cent). It allows up to six places beyond the minor
// unit and refuses zero, negatives and more than MaxPointValue.
func ParsePointValue(s, currency string) (int64, error) {
	exp := CurrencyExponent(currency)
	v, err := parseDecimal(s, exp+6)
	if err != nil || v == 0 || v > MaxPointValue*pow10(exp+6) {
		return 0, Errorf(CodeInvalidAmount, "point_value", "%q must be a decimal greater than 0 and at most %d, with at most %d places", s, MaxPointValue, exp+6)
	}
	return v, nil
}

// FormatMinor writes an amount in minor units as a decimal in major units:
// 1234 EUR is "12.34", -5 EUR is "-0.05", 1234 JPY is "1234".
func FormatMinor(v int64, currency string) string {
	exp := CurrencyExponent(currency)
	neg := v < 0
	u := uint64(v)
	if neg {
		u = -u
	}
	s := strconv.FormatUint(u, 10)
	if exp > 0 {
		if len(s) <= exp {
			s = strings.Repeat("0", exp-len(s)+1) + s
		}
		s = s[:len(s)-exp] + "." + s[len(s)-exp:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// parseDecimal parses a non-negative decimal ("12", "1.5", "0.0001") with at
// most places digits after the point into an integer scaled by 10^places.
// No sign, exponent, spaces or empty parts are accepted.
func parseDecimal(s string, places int) (int64, error) {
	whole, frac, hasPoint := strings.Cut(s, ".")
	if whole == "" || (hasPoint && frac == "") || len(frac) > places || len(whole) > 12 {
		return 0, Errorf(CodeMalformed, "", "%q is not a decimal with at most %d places", s, places)
	}
	for _, part := range []string{whole, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return 0, Errorf(CodeMalformed, "", "%q is not a decimal", s)
			}
		}
	}
	frac += strings.Repeat("0", places-len(frac))
	v, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil {
		return 0, Errorf(CodeMalformed, "", "%q is out of range", s)
	}
	return v, nil
}

func pow10(n int) int64 {
	v := int64(1)
	for range n {
		v *= 10
	}
	return v
}
