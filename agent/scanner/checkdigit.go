package scanner

import "errors"

// ErrNoCheckDigit is returned by CheckDigit.Compute for a mod 11 payload
// whose check digit would be 10. Such numbers are never issued: the scheme
// has no eleventh digit symbol (some issuers print 'X'; the coalition does
// not), so Valid refuses every number with that payload.
var ErrNoCheckDigit = errors.New("mod 11 gives 10 for this number: it cannot carry a check digit")

// Valid reports whether number, all ASCII digits with its check digit last,
// is correct under c. CheckNone accepts anything; CheckLuhn and CheckMod11
// refuse an empty number, a single digit, and anything but digits.
func (c CheckDigit) Valid(number string) bool {
	if c == CheckNone || c == "" {
		return true
	}
	if len(number) < 2 || !allDigits(number) {
		return false
	}
	want, err := c.Compute(number[:len(number)-1])
	return err == nil && want == number[len(number)-1]
}

// Compute returns the check digit c appends to payload (ASCII digits, at
// least one).
//
// CheckLuhn: from the right, every second digit starting with the last
// payload digit is doubled (9 subtracted when over 9); the check digit
// brings the sum to a multiple of 10.
//
// CheckMod11: from the right, the payload digits are weighted 2, 3, 4, 5,
// 6, 7, 2, 3, … and summed; the check digit is 11 − (sum mod 11), where 11
// is written 0 and 10 is refused with ErrNoCheckDigit.
func (c CheckDigit) Compute(payload string) (byte, error) {
	if payload == "" || !allDigits(payload) {
		return 0, errors.New("check digit: the payload must be one or more digits")
	}
	switch c {
	case CheckLuhn:
		return '0' + byte((10-luhnSum(payload, true)%10)%10), nil
	case CheckMod11:
		sum := 0
		for i := range len(payload) {
			d := int(payload[len(payload)-1-i] - '0')
			sum += d * (2 + i%6)
		}
		switch r := 11 - sum%11; r {
		case 11:
			return '0', nil
		case 10:
			return 0, ErrNoCheckDigit
		default:
			return '0' + byte(r), nil
		}
	}
	return 0, errors.New("check digit: scheme " + string(c) + " has none")
}

// luhnSum is the Luhn sum of digits; doubleLast says whether the last digit
// is one of those doubled (true for a payload, false for a full number).
func luhnSum(digits string, doubleLast bool) int {
	sum := 0
	for i := range len(digits) {
		d := int(digits[len(digits)-1-i] - '0')
		if (i%2 == 0) == doubleLast {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum
}

// luhnValid reports whether digits (ASCII digits) pass the Luhn check.
func luhnValid(digits string) bool { return luhnSum(digits, false)%10 == 0 }

// gs1CheckValid reports whether digits (ASCII digits, check digit last)
// pass the GS1 mod 10 check of GTINs, SSCCs, GLNs and GSRNs: from the
// right, payload digits are weighted 3, 1, 3, …
func gs1CheckValid(digits string) bool {
	if len(digits) < 2 {
		return false
	}
	sum := 0
	for i := 1; i < len(digits); i++ {
		d := int(digits[len(digits)-1-i] - '0')
		if i%2 == 1 {
			d *= 3
		}
		sum += d
	}
	return byte('0'+(10-sum%10)%10) == digits[len(digits)-1]
}

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
