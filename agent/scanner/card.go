package scanner

// LooksLikePaymentCard reports whether s is, or carries, what looks like a
// payment card number (a PAN): a run of 13 to 19 digits — spaces and dashes
// between digit groups are ignored, as in "4111 1111 1111 1111" — that
// passes the Luhn check and starts with a card scheme's prefix:
//
//	Visa 4; Mastercard 51–55 and 2221–2720; American Express 34, 37;
//	Discover 6011, 644–649, 65; JCB 3528–3589; Diners Club 300–305, 36,
//	38–39; UnionPay 62; Maestro 50, 56–58 and 6; Mir 2200–2204.
//
// The whole of s is searched, so magnetic stripe track data
// (";4111…=2512…?") and URLs with a card number inside are caught too.
//
// Member numbers therefore must not look like cards: a coalition that uses
// Luhn check digits issues numbers outside these prefixes (e.g. starting
// with 7, 8 or 9) or of another length. A wrong refusal costs a member a
// retry; a card number in the outbox, the logs or the hub costs PCI DSS scope.
func LooksLikePaymentCard(s string) bool {
	var run [19]byte
	n := 0        // digits in run
	over := false // the current run has more than 19 digits: not a PAN
	sep := false  // the last byte was a separator inside a run
	flush := func() bool {
		hit := !over && n >= 13 && isCardNumber(string(run[:n]))
		n, over, sep = 0, false, false
		return hit
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			sep = false
			if n == len(run) {
				over = true
				continue
			}
			if !over {
				run[n] = c
				n++
			}
		case (c == ' ' || c == '-') && n > 0 && !sep:
			sep = true // one separator between digit groups
		default:
			if flush() {
				return true
			}
		}
	}
	return flush()
}

// isCardNumber reports whether digits (13–19 ASCII digits) are Luhn-valid
// with a card scheme's prefix.
func isCardNumber(digits string) bool {
	return len(digits) >= 13 && len(digits) <= 19 && cardPrefix(digits) && luhnValid(digits)
}

func cardPrefix(d string) bool {
	p := func(n int) int { // the first n digits as a number
		v := 0
		for i := range n {
			v = v*10 + int(d[i]-'0')
		}
		return v
	}
	in := func(n, lo, hi int) bool { v := p(n); return v >= lo && v <= hi }
	switch d[0] {
	case '4': // Visa
		return true
	case '5': // Mastercard 51–55, Maestro 50 and 56–58
		return in(2, 50, 58)
	case '6': // Discover, UnionPay, Maestro: the whole 6 range
		return true
	case '3': // Amex 34, 37; JCB 3528–3589; Diners 300–305, 36, 38–39
		return in(2, 34, 34) || in(2, 37, 37) || in(4, 3528, 3589) ||
			in(3, 300, 305) || in(2, 36, 36) || in(2, 38, 39)
	case '2': // Mastercard 2221–2720, Mir 2200–2204
		return in(4, 2221, 2720) || in(4, 2200, 2204)
	}
	return false
}
