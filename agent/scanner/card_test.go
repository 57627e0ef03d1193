package scanner_test

import (
	"testing"

	"github.com/tillsync/tillsync/agent/scanner"
)

// Payment card test numbers published by the card schemes and processors for
// testing; none is a real account.
var testCards = []string{
	"4111111111111111",    // Visa
	"4000056655665556",    // Visa debit
	"4222222222222",       // Visa, 13 digits
	"5555555555554444",    // Mastercard
	"5200828282828210",    // Mastercard debit
	"2223003122003222",    // Mastercard 2-series
	"378282246310005",     // American Express
	"371449635398431",     // American Express
	"6011111111111117",    // Discover
	"3530111333300000",    // JCB
	"30569309025904",      // Diners Club
	"6200000000000005",    // UnionPay
	"6759649826438453",    // Maestro
	"4111111111111111110", // Visa, 19 digits
}

func TestLooksLikePaymentCard(t *testing.T) {
	for _, pan := range testCards {
		for _, s := range []string{
			pan,
			" " + pan + " ",
			"%B" + pan + "^CARDHOLDER/TEST^25121010000000000000?", // track 1
			";" + pan + "=25121010000000000000?",                  // track 2
			"https://pay.example/?pan=" + pan,
		} {
			if !scanner.LooksLikePaymentCard(s) {
				t.Errorf("LooksLikePaymentCard(%q) = false", s)
			}
		}
	}
	grouped := []string{"4111 1111 1111 1111", "4111-1111-1111-1111", "3782 822463 10005"}
	for _, s := range grouped {
		if !scanner.LooksLikePaymentCard(s) {
			t.Errorf("LooksLikePaymentCard(%q) = false", s)
		}
	}

	notCards := []string{
		"",
		"M-000123",
		"4111111111111112",        // Visa prefix, Luhn fails
		"7000000000000005",        // Luhn-valid, no card prefix (loyalty range)
		"8000000000000003",        // Luhn-valid, no card prefix
		"9000000000000001",        // Luhn-valid, no card prefix
		"1000000000000008",        // Luhn-valid, no card prefix
		"79927398713",             // Luhn-valid, 11 digits
		"411111111111",            // Visa prefix, 12 digits
		"41111111111111111111",    // 20 digits: too long for a PAN
		"4006381333931",           // EAN-13, prefix 4, not Luhn-valid
		"5912345678901234",        // prefix 59: no scheme
		"3912345678901234",        // Diners prefix 39, Luhn fails
		"0104006381333931",        // GS1 (01) GTIN
		"4111 1111  1111 1111",    // two spaces split the run
		"04111111111111111111111", // the PAN inside a longer digit run
	}
	for _, s := range notCards {
		if scanner.LooksLikePaymentCard(s) {
			t.Errorf("LooksLikePaymentCard(%q) = true", s)
		}
	}
}
