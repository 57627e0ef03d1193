package scanner

import (
	"errors"
	"fmt"
	"strings"
)

// GS is the ASCII group separator (0x1D). Scanners send the GS1 function
// character FNC1 as GS when it separates a variable-length element from the
// next one, and some also send it at the start of the data (FNC1 in first
// position, the mark of a GS1 symbol).
const GS = '\x1d'

// AIGSRNRecipient is the GS1 application identifier of the Global Service
// Relation Number of a service recipient: 18 digits with a GS1 mod 10 check
// digit. Loyalty cards in GS1 symbols carry the member number in it.
const AIGSRNRecipient = "8018"

// ErrMalformedGS1 is returned (wrapped, in a *GS1Error) by ParseGS1 when data
// is not a well-formed GS1 element string.
var ErrMalformedGS1 = errors.New("malformed GS1 element string")

// GS1Error says where and why ParseGS1 refused an element string. Its
// message names the position and the application identifier, never the
// data.
type GS1Error struct {
	// Offset is the byte offset in the data (leading GS characters
	// included) where the problem was found.
	Offset int
	// AI is the application identifier of the element at fault, or "" when
	// none could be read.
	AI string
	// Reason says what is wrong, e.g. "unknown application identifier".
	Reason string
	// BadCheckDigit is set when the element is well-formed except for its
	// GS1 mod 10 check digit.
	BadCheckDigit bool
}

// Error gives one line: "malformed GS1 element string at byte 4: AI (8018): wrong check digit".
func (e *GS1Error) Error() string {
	if e.AI == "" {
		return fmt.Sprintf("%v at byte %d: %s", ErrMalformedGS1, e.Offset, e.Reason)
	}
	return fmt.Sprintf("%v at byte %d: AI (%s): %s", ErrMalformedGS1, e.Offset, e.AI, e.Reason)
}

// Unwrap gives ErrMalformedGS1.
func (e *GS1Error) Unwrap() error { return ErrMalformedGS1 }

// GS1Element is one element of a GS1 element string: an application
// identifier and its value.
type GS1Element struct {
	// AI is the application identifier, two to four digits: "01", "8018".
	AI string `json:"ai"`
	// Value is the element's data, without separators.
	Value string `json:"value"`
}

// GS1Data is a parsed GS1 element string, elements in the order scanned.
type GS1Data []GS1Element

// Get returns the value of the first element with application identifier ai.
func (d GS1Data) Get(ai string) (string, bool) {
	for _, e := range d {
		if e.AI == ai {
			return e.Value, true
		}
	}
	return "", false
}

// AIs lists the application identifiers in d, in order.
func (d GS1Data) AIs() []string {
	out := make([]string, len(d))
	for i, e := range d {
		out[i] = e.AI
	}
	return out
}

// String gives d in the human-readable form printed under GS1 barcodes:
// "(01)09521234543213(17)261231(10)AB-12".
func (d GS1Data) String() string {
	var b strings.Builder
	for _, e := range d {
		b.WriteString("(" + e.AI + ")" + e.Value)
	}
	return b.String()
}

// IsGS1 reports whether s carries a GS1 element string: its AIM symbology
// identifier says so (]C1 GS1-128, ]e0 GS1 DataBar, ]d2 GS1 DataMatrix,
// ]Q3 GS1 QR Code) or its data starts with GS (FNC1 in first position, from
// a scanner that sends no AIM identifier).
func IsGS1(s Scan) bool {
	switch s.Symbology {
	case "C1", "e0", "d2", "Q3":
		return true
	}
	return len(s.Data) > 0 && s.Data[0] == GS
}

// ParseGS1 splits a GS1 element string into its elements. data is a scan's
// Data: leading GS characters (FNC1 in first position) are skipped.
//
// Each element is an application identifier (AI) of two to four digits
// followed by its value. Elements whose AI starts with one of the prefixes
// of predefined length in the GS1 General Specifications (00–04, 11–20,
// 31–36, 41) have exactly that length and need no separator; every other
// element ends at a GS or at the end of the data. Each value is checked
// against its AI's length and character set (digits, or GS1's CSET 82 / 39
// / 64), and keys with a check digit (SSCC, GTIN, GLN, GSRN, …) against
// the GS1 mod 10 check digit.
//
// A string that breaks any of these rules gives a *GS1Error wrapping
// ErrMalformedGS1; an AI ParseGS1 does not know is such an error too.
func ParseGS1(data string) (GS1Data, error) {
	i := 0
	for i < len(data) && data[i] == GS {
		i++
	}
	if i == len(data) {
		return nil, &GS1Error{Offset: i, Reason: "no element"}
	}
	var out GS1Data
	for i < len(data) {
		ai, spec := lookupAI(data[i:])
		if spec == nil {
			return nil, &GS1Error{Offset: i, Reason: "unknown application identifier"}
		}
		start := i + len(ai)
		var end int
		if spec.predefined {
			end = start + spec.max
			if end > len(data) || strings.IndexByte(data[start:end], GS) >= 0 {
				return nil, &GS1Error{Offset: start, AI: ai,
					Reason: fmt.Sprintf("needs %d characters, has %d", spec.max, fieldLen(data[start:]))}
			}
		} else {
			end = start + fieldLen(data[start:])
		}
		v := data[start:end]
		if err := spec.check(v); err != "" {
			return nil, &GS1Error{Offset: start, AI: ai, Reason: err}
		}
		if spec.csum > 0 && !gs1CheckValid(v[:spec.csum]) {
			return nil, &GS1Error{Offset: start, AI: ai, Reason: "wrong check digit", BadCheckDigit: true}
		}
		out = append(out, GS1Element{AI: ai, Value: v})
		i = end
		if i < len(data) && data[i] == GS {
			// A separator ends a variable-length element; after one of
			// predefined length it is redundant but harmless. A second one
			// would mean an empty element.
			i++
			if i < len(data) && data[i] == GS {
				return nil, &GS1Error{Offset: i, Reason: "empty element between two separators"}
			}
		}
	}
	return out, nil
}

// fieldLen is the length of s up to its first GS.
func fieldLen(s string) int {
	if n := strings.IndexByte(s, GS); n >= 0 {
		return n
	}
	return len(s)
}

// charSet is the set of characters a value may use.
type charSet uint8

const (
	setN  charSet = iota // digits
	set82                // GS1 AI encodable character set 82
	set39                // GS1 AI encodable character set 39
	set64                // GS1 AI encodable character set 64 (base64url and '=')
)

// aiSpec is what the GS1 General Specifications say of one AI's value.
type aiSpec struct {
	min, max   int     // length of the value; equal for a fixed length
	set        charSet // characters allowed after the first digits ones
	digits     int     // leading characters that must be digits (set N: all)
	csum       int     // the first csum characters end in a GS1 mod 10 check digit; 0: none
	predefined bool    // the AI's prefix is of predefined length: no separator follows
	title      string
}

// check returns why v does not fit s, or "".
func (s *aiSpec) check(v string) string {
	switch {
	case len(v) == 0:
		return "no value"
	case s.min == s.max && len(v) != s.min:
		return fmt.Sprintf("needs %d characters, has %d", s.min, len(v))
	case len(v) < s.min:
		return fmt.Sprintf("needs at least %d characters, has %d", s.min, len(v))
	case len(v) > s.max:
		return fmt.Sprintf("takes at most %d characters, has %d (separator missing?)", s.max, len(v))
	}
	for i := range len(v) {
		c := v[i]
		set := s.set
		if s.set == setN || i < s.digits {
			set = setN
		}
		if !inSet(set, c) {
			if set == setN {
				return fmt.Sprintf("byte %d of the value is not a digit", i+1)
			}
			return fmt.Sprintf("byte %d of the value is not allowed in GS1 data", i+1)
		}
	}
	return ""
}

func inSet(set charSet, c byte) bool {
	digit := c >= '0' && c <= '9'
	upper := c >= 'A' && c <= 'Z'
	switch set {
	case setN:
		return digit
	case set39:
		return digit || upper || c == '#' || c == '-' || c == '/'
	case set64:
		return digit || upper || c >= 'a' && c <= 'z' || c == '-' || c == '_' || c == '='
	}
	return digit || upper || c >= 'a' && c <= 'z' || strings.IndexByte(`!"%&'()*+,-./:;<=>?_`, c) >= 0
}

// predefinedLength is the GS1 General Specifications' table of element
// strings with predefined length, by the first two digits of the AI: the
// length of AI and value together. Only these need no FNC1 after them.
var predefinedLength = map[string]int{
	"00": 20, "01": 16, "02": 16, "03": 16, "04": 18,
	"11": 8, "12": 8, "13": 8, "14": 8, "15": 8, "16": 8, "17": 8, "18": 8, "19": 8, "20": 4,
	"31": 10, "32": 10, "33": 10, "34": 10, "35": 10, "36": 10,
	"41": 16,
}

// aiTable maps every known AI to its spec; see aiRanges.
var aiTable = func() map[string]*aiSpec {
	m := make(map[string]*aiSpec, 512)
	for _, r := range aiRanges {
		for ai := r.lo; ; ai = incDigits(ai) {
			s := r.spec
			if _, ok := predefinedLength[ai[:2]]; ok {
				s.predefined = true
			}
			m[ai] = &s
			if ai == r.hi {
				break
			}
		}
	}
	return m
}()

// lookupAI finds the AI at the start of s. AIs are prefix-free: no AI is
// the start of another, so the first hit is the only one.
func lookupAI(s string) (string, *aiSpec) {
	for n := 2; n <= 4 && n <= len(s); n++ {
		if !allDigits(s[:n]) {
			return "", nil
		}
		if spec, ok := aiTable[s[:n]]; ok {
			return s[:n], spec
		}
	}
	return "", nil
}

// GS1AITitle returns the GS1 data title of ai ("GTIN", "BATCH/LOT", …), or
// "" for an AI ParseGS1 does not know.
func GS1AITitle(ai string) string {
	if s, ok := aiTable[ai]; ok {
		return s.title
	}
	return ""
}

// incDigits adds one to a string of digits of fixed width ("3105" → "3106").
func incDigits(s string) string {
	b := []byte(s)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < '9' {
			b[i]++
			return string(b)
		}
		b[i] = '0'
	}
	return string(b)
}

type aiRange struct {
	lo, hi string
	spec   aiSpec
}

// Shorthands for aiRanges.
func fixN(n int, title string) aiSpec { return aiSpec{min: n, max: n, set: setN, title: title} }
func varN(max int, title string) aiSpec {
	return aiSpec{min: 1, max: max, set: setN, title: title}
}
func varX(max int, title string) aiSpec {
	return aiSpec{min: 1, max: max, set: set82, title: title}
}
func key(n int, title string) aiSpec { s := fixN(n, title); s.csum = n; return s }

// aiRanges are the application identifiers of the GS1 General
// Specifications (as in GS1's machine-readable AI syntax dictionary):
// value length, characters, and check digit. Values made of several
// components ("N3 X..27") are kept as one: total length, leading digits.
var aiRanges = []aiRange{
	{"00", "00", key(18, "SSCC")},
	{"01", "01", key(14, "GTIN")},
	{"02", "02", key(14, "CONTENT")},
	{"10", "10", varX(20, "BATCH/LOT")},
	{"11", "11", fixN(6, "PROD DATE")},
	{"12", "12", fixN(6, "DUE DATE")},
	{"13", "13", fixN(6, "PACK DATE")},
	{"15", "15", fixN(6, "BEST BEFORE")},
	{"16", "16", fixN(6, "SELL BY")},
	{"17", "17", fixN(6, "USE BY")},
	{"20", "20", fixN(2, "VARIANT")},
	{"21", "21", varX(20, "SERIAL")},
	{"22", "22", varX(20, "CPV")},
	{"235", "235", varX(28, "TPX")},
	{"240", "240", varX(30, "ADDITIONAL ID")},
	{"241", "241", varX(30, "CUST. PART No.")},
	{"242", "242", varN(6, "MTO VARIANT")},
	{"243", "243", varX(20, "PCN")},
	{"250", "250", varX(30, "SECONDARY SERIAL")},
	{"251", "251", varX(30, "REF. TO SOURCE")},
	{"253", "253", aiSpec{min: 13, max: 30, set: set82, digits: 13, csum: 13, title: "GDTI"}},
	{"254", "254", varX(20, "GLN EXTENSION COMPONENT")},
	{"255", "255", aiSpec{min: 13, max: 25, set: setN, csum: 13, title: "GCN"}},
	{"30", "30", varN(8, "VAR. COUNT")},
	{"3100", "3105", fixN(6, "NET WEIGHT (kg)")},
	{"3110", "3115", fixN(6, "LENGTH (m)")},
	{"3120", "3125", fixN(6, "WIDTH (m)")},
	{"3130", "3135", fixN(6, "HEIGHT (m)")},
	{"3140", "3145", fixN(6, "AREA (m²)")},
	{"3150", "3155", fixN(6, "NET VOLUME (l)")},
	{"3160", "3165", fixN(6, "NET VOLUME (m³)")},
	{"3200", "3205", fixN(6, "NET WEIGHT (lb)")},
	{"3210", "3215", fixN(6, "LENGTH (in)")},
	{"3220", "3225", fixN(6, "LENGTH (ft)")},
	{"3230", "3235", fixN(6, "LENGTH (yd)")},
	{"3240", "3245", fixN(6, "WIDTH (in)")},
	{"3250", "3255", fixN(6, "WIDTH (ft)")},
	{"3260", "3265", fixN(6, "WIDTH (yd)")},
	{"3270", "3275", fixN(6, "HEIGHT (in)")},
	{"3280", "3285", fixN(6, "HEIGHT (ft)")},
	{"3290", "3295", fixN(6, "HEIGHT (yd)")},
	{"3300", "3305", fixN(6, "GROSS WEIGHT (kg)")},
	{"3310", "3315", fixN(6, "LENGTH (m), log")},
	{"3320", "3325", fixN(6, "WIDTH (m), log")},
	{"3330", "3335", fixN(6, "HEIGHT (m), log")},
	{"3340", "3345", fixN(6, "AREA (m²), log")},
	{"3350", "3355", fixN(6, "VOLUME (l), log")},
	{"3360", "3365", fixN(6, "VOLUME (m³), log")},
	{"3370", "3375", fixN(6, "KG PER m²")},
	{"3400", "3405", fixN(6, "GROSS WEIGHT (lb)")},
	{"3410", "3415", fixN(6, "LENGTH (in), log")},
	{"3420", "3425", fixN(6, "LENGTH (ft), log")},
	{"3430", "3435", fixN(6, "LENGTH (yd), log")},
	{"3440", "3445", fixN(6, "WIDTH (in), log")},
	{"3450", "3455", fixN(6, "WIDTH (ft), log")},
	{"3460", "3465", fixN(6, "WIDTH (yd), log")},
	{"3470", "3475", fixN(6, "HEIGHT (in), log")},
	{"3480", "3485", fixN(6, "HEIGHT (ft), log")},
	{"3490", "3495", fixN(6, "HEIGHT (yd), log")},
	{"3500", "3505", fixN(6, "AREA (in²)")},
	{"3510", "3515", fixN(6, "AREA (ft²)")},
	{"3520", "3525", fixN(6, "AREA (yd²)")},
	{"3530", "3535", fixN(6, "AREA (in²), log")},
	{"3540", "3545", fixN(6, "AREA (ft²), log")},
	{"3550", "3555", fixN(6, "AREA (yd²), log")},
	{"3560", "3565", fixN(6, "NET WEIGHT (t oz)")},
	{"3570", "3575", fixN(6, "NET VOLUME (oz)")},
	{"3600", "3605", fixN(6, "NET VOLUME (qt)")},
	{"3610", "3615", fixN(6, "NET VOLUME (gal.)")},
	{"3620", "3625", fixN(6, "VOLUME (qt), log")},
	{"3630", "3635", fixN(6, "VOLUME (gal.), log")},
	{"3640", "3645", fixN(6, "VOLUME (in³)")},
	{"3650", "3655", fixN(6, "VOLUME (ft³)")},
	{"3660", "3665", fixN(6, "VOLUME (yd³)")},
	{"3670", "3675", fixN(6, "VOLUME (in³), log")},
	{"3680", "3685", fixN(6, "VOLUME (ft³), log")},
	{"3690", "3695", fixN(6, "VOLUME (yd³), log")},
	{"37", "37", varN(8, "COUNT")},
	{"3900", "3909", varN(15, "AMOUNT")},
	{"3910", "3919", aiSpec{min: 4, max: 18, set: setN, title: "AMOUNT"}},
	{"3920", "3929", varN(15, "PRICE")},
	{"3930", "3939", aiSpec{min: 4, max: 18, set: setN, title: "PRICE"}},
	{"3940", "3943", fixN(4, "PRCNT OFF")},
	{"3950", "3955", fixN(6, "PRICE/UoM")},
	{"400", "400", varX(30, "ORDER NUMBER")},
	{"401", "401", varX(30, "GINC")},
	{"402", "402", key(17, "GSIN")},
	{"403", "403", varX(30, "ROUTE")},
	{"410", "410", key(13, "SHIP TO LOC")},
	{"411", "411", key(13, "BILL TO")},
	{"412", "412", key(13, "PURCHASE FROM")},
	{"413", "413", key(13, "SHIP FOR LOC")},
	{"414", "414", key(13, "LOC No.")},
	{"415", "415", key(13, "PAY TO")},
	{"416", "416", key(13, "PROD/SERV LOC")},
	{"417", "417", key(13, "PARTY")},
	{"420", "420", varX(20, "SHIP TO POST")},
	{"421", "421", aiSpec{min: 4, max: 12, set: set82, digits: 3, title: "SHIP TO POST"}},
	{"422", "422", fixN(3, "ORIGIN")},
	{"423", "423", varN(15, "COUNTRY - INITIAL PROCESS")},
	{"424", "424", fixN(3, "COUNTRY - PROCESS")},
	{"425", "425", varN(15, "COUNTRY - DISASSEMBLY")},
	{"426", "426", fixN(3, "COUNTRY - FULL PROCESS")},
	{"427", "427", varX(3, "ORIGIN SUBDIVISION")},
	{"4300", "4301", varX(35, "SHIP TO COMP/NAME")},
	{"4302", "4306", varX(70, "SHIP TO ADDRESS")},
	{"4307", "4307", aiSpec{min: 2, max: 2, set: set82, title: "SHIP TO COUNTRY"}},
	{"4308", "4308", varX(30, "SHIP TO PHONE")},
	{"4309", "4309", fixN(20, "SHIP TO GEO")},
	{"4310", "4311", varX(35, "RTN TO COMP/NAME")},
	{"4312", "4316", varX(70, "RTN TO ADDRESS")},
	{"4317", "4317", aiSpec{min: 2, max: 2, set: set82, title: "RTN TO COUNTRY"}},
	{"4318", "4318", varX(20, "RTN TO POST")},
	{"4319", "4319", varX(30, "RTN TO PHONE")},
	{"4320", "4320", varX(35, "SRV DESCRIPTION")},
	{"4321", "4323", fixN(1, "DELIVERY FLAG")},
	{"4324", "4325", fixN(10, "DELIVERY DATE/TIME")},
	{"4326", "4326", fixN(6, "REL DATE")},
	{"4330", "4333", aiSpec{min: 6, max: 7, set: set82, digits: 6, title: "TEMPERATURE"}},
	{"7001", "7001", fixN(13, "NSN")},
	{"7002", "7002", varX(30, "MEAT CUT")},
	{"7003", "7003", fixN(10, "EXPIRY TIME")},
	{"7004", "7004", varN(4, "ACTIVE POTENCY")},
	{"7005", "7005", varX(12, "CATCH AREA")},
	{"7006", "7006", fixN(6, "FIRST FREEZE DATE")},
	{"7007", "7007", aiSpec{min: 6, max: 12, set: setN, title: "HARVEST DATE"}},
	{"7008", "7008", varX(3, "AQUATIC SPECIES")},
	{"7009", "7009", varX(10, "FISHING GEAR TYPE")},
	{"7010", "7010", varX(2, "PROD METHOD")},
	{"7011", "7011", aiSpec{min: 6, max: 10, set: setN, title: "TEST BY DATE"}},
	{"7020", "7022", varX(20, "REFURB/FUNC/REV STAT")},
	{"7023", "7023", varX(30, "GIAI - ASSEMBLY")},
	{"7030", "7039", aiSpec{min: 4, max: 30, set: set82, digits: 3, title: "PROCESSOR"}},
	{"7040", "7040", aiSpec{min: 4, max: 4, set: set82, digits: 1, title: "UIC+EXT"}},
	{"710", "715", varX(20, "NHRN")},
	{"7230", "7239", aiSpec{min: 3, max: 30, set: set82, title: "CERT"}},
	{"7240", "7240", varX(20, "PROTOCOL")},
	{"7241", "7241", fixN(2, "AIDC MEDIA TYPE")},
	{"7242", "7242", varX(25, "VCN")},
	{"8001", "8001", fixN(14, "DIMENSIONS")},
	{"8002", "8002", varX(20, "CMT No.")},
	{"8003", "8003", aiSpec{min: 14, max: 30, set: set82, digits: 14, title: "GRAI"}},
	{"8004", "8004", varX(30, "GIAI")},
	{"8005", "8005", fixN(6, "PRICE PER UNIT")},
	{"8006", "8006", aiSpec{min: 18, max: 18, set: setN, csum: 14, title: "ITIP"}},
	{"8007", "8007", varX(34, "IBAN")},
	{"8008", "8008", aiSpec{min: 8, max: 12, set: setN, title: "PROD TIME"}},
	{"8009", "8009", varX(50, "OPTSEN")},
	{"8010", "8010", aiSpec{min: 1, max: 30, set: set39, title: "CPID"}},
	{"8011", "8011", varN(12, "CPID SERIAL")},
	{"8012", "8012", varX(20, "VERSION")},
	{"8013", "8013", varX(25, "GMN")},
	{"8017", "8017", key(18, "GSRN - PROVIDER")},
	{AIGSRNRecipient, AIGSRNRecipient, key(18, "GSRN - RECIPIENT")},
	{"8019", "8019", varN(10, "SRIN")},
	{"8020", "8020", varX(25, "REF No.")},
	{"8026", "8026", aiSpec{min: 18, max: 18, set: setN, csum: 14, title: "ITIP CONTENT"}},
	{"8030", "8030", aiSpec{min: 1, max: 90, set: set64, title: "DIGSIG"}},
	{"8110", "8110", varX(70, "COUPON")},
	{"8111", "8111", fixN(4, "POINTS")},
	{"8112", "8112", varX(70, "COUPON")},
	{"8200", "8200", varX(70, "PRODUCT URL")},
	{"90", "90", varX(30, "INTERNAL")},
	{"91", "99", varX(90, "INTERNAL")},
}
