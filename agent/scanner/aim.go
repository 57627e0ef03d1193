package scanner

// ParseAIM splits an AIM symbology identifier off a frame: "]E0123" gives
// ("E0", "123"). An identifier is ']' followed by a code character (A-Z or
// a-z) and a modifier character (0-9, A-Z or a-z); a frame that does not start
// with one is all data, and symbology is "".
//
// data aliases frame.
//
// Common codes: A Code 39, C Code 128 (C1 = GS1-128), E EAN/UPC, I
// Interleaved 2 of 5, Q QR Code, d Data Matrix (d2 = GS1 DataMatrix),
// e GS1 DataBar.
func ParseAIM(frame []byte) (symbology string, data []byte) {
	if len(frame) >= 3 && frame[0] == ']' && isAIMCode(frame[1]) && isAIMModifier(frame[2]) {
		return string(frame[1:3]), frame[3:]
	}
	return "", frame
}

func isAIMCode(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

func isAIMModifier(c byte) bool {
	return isAIMCode(c) || c >= '0' && c <= '9'
}
