package scanner

// SymbologyName returns a person's name for an AIM symbology identifier as
// Scan.Symbology holds it (without the ']'): "C0" gives "Code 128", "E0"
// "EAN-13", "Q1" "QR Code", "d2" "GS1 DataMatrix". An identifier it does not
// know gives "unknown symbology"; "" gives "no AIM identifier".
func SymbologyName(sym string) string {
	if sym == "" {
		return "no AIM identifier"
	}
	if n, ok := symbologyNames[sym]; ok {
		return n
	}
	if len(sym) == 2 {
		if n, ok := symbologyNames[sym[:1]]; ok {
			return n
		}
	}
	return "unknown symbology"
}

// symbologyNames holds names by full identifier where the modifier changes
// what the code is, and by code character otherwise (ISO/IEC 15424).
var symbologyNames = map[string]string{
	"A": "Code 39",
	"C": "Code 128", "C1": "GS1-128",
	"d": "Data Matrix", "d2": "GS1 DataMatrix",
	"E": "EAN/UPC", "E0": "EAN-13", "E1": "EAN add-on (2 digits)", "E2": "EAN add-on (5 digits)",
	"E3": "EAN-13 with add-on", "E4": "EAN-8",
	"e": "GS1 DataBar",
	"F": "Codabar",
	"G": "Code 93",
	"H": "Code 11",
	"I": "Interleaved 2 of 5",
	"L": "PDF417",
	"M": "MSI",
	"Q": "QR Code", "Q0": "QR Code model 1", "Q3": "GS1 QR Code",
	"U": "MaxiCode",
	"X": "other symbology",
	"z": "Aztec",
}
