package scanner

import "testing"

// The AI table must agree with the General Specifications' table of
// predefined lengths: an AI under a predefined prefix has a fixed-length
// value, and AI plus value fill exactly the predefined length.
func TestAITableAgreesWithPredefinedLengths(t *testing.T) {
	for ai, s := range aiTable {
		total, predefined := predefinedLength[ai[:2]]
		if predefined != s.predefined {
			t.Errorf("AI %s: predefined = %v, want %v", ai, s.predefined, predefined)
		}
		if predefined && (s.min != s.max || len(ai)+s.max != total) {
			t.Errorf("AI %s: value %d..%d; with the AI it must be exactly %d", ai, s.min, s.max, total)
		}
		if s.min < 1 || s.max < s.min {
			t.Errorf("AI %s: length %d..%d", ai, s.min, s.max)
		}
		if s.csum > s.min || s.digits > s.min {
			t.Errorf("AI %s: check digit or leading digits beyond the shortest value", ai)
		}
		if s.title == "" {
			t.Errorf("AI %s has no title", ai)
		}
	}
}

// No AI is the start of another: otherwise the parser could not tell where
// an AI ends.
func TestAITablePrefixFree(t *testing.T) {
	for a := range aiTable {
		for b := range aiTable {
			if a != b && len(a) < len(b) && b[:len(a)] == a {
				t.Errorf("AI %s is a prefix of AI %s", a, b)
			}
		}
	}
	if len(aiTable) < 300 {
		t.Errorf("only %d AIs in the table", len(aiTable))
	}
}

func TestGS1CheckDigit(t *testing.T) {
	for _, tt := range []struct {
		digits string
		want   bool
	}{
		{"4006381333931", true}, // EAN-13 on the package of a pen
		{"09521234543213", true},
		{"106141411234567897", true},
		{"123456789012345675", true},
		{"123456789012345670", false},
		{"4006381333932", false},
		{"7", false},
	} {
		if got := gs1CheckValid(tt.digits); got != tt.want {
			t.Errorf("gs1CheckValid(%q) = %v, want %v", tt.digits, got, tt.want)
		}
	}
}
