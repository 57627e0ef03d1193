package scanner_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/agent/scanner"
)

func TestUSBMatchMatches(t *testing.T) {
	p := scanner.PortInfo{Name: "/dev/ttyACM0", USB: true, VID: "0c2e", PID: "0b61", SerialNumber: "22143B0042"}
	for _, tt := range []struct {
		m    string
		p    scanner.PortInfo
		want bool
	}{
		{"0c2e:0b61", p, true},
		{"0C2E:0B61", p, true},
		{"0c2e:0b61:22143B0042", p, true},
		{"0c2e:0b61:22143b0042", p, false}, // serial numbers are compared exactly
		{"0c2e:0b62", p, false},
		{"0c2f:0b61", p, false},
		{"0c2e:0b61", scanner.PortInfo{Name: "/dev/ttyS0"}, false},
		{"0c2e:0b61", scanner.PortInfo{Name: "COM3", USB: true, VID: "0C2E", PID: "0B61"}, true},
	} {
		m, err := scanner.ParseUSBMatch(tt.m)
		if err != nil {
			t.Fatalf("ParseUSBMatch(%q): %v", tt.m, err)
		}
		if got := m.Matches(tt.p); got != tt.want {
			t.Errorf("%s.Matches(%+v) = %v, want %v", m, tt.p, got, tt.want)
		}
	}
	if (scanner.USBMatch{}).Matches(p) {
		t.Error("the zero USBMatch matches a port")
	}
	for _, bad := range []string{"0c2e", "0c2e:", "0c2e:xyz1", "c2e:0b61", "0c2e:0b61:\x00"} {
		if _, err := scanner.ParseUSBMatch(bad); err == nil {
			t.Errorf("ParseUSBMatch(%q) = nil error", bad)
		}
	}
}

func TestVendors(t *testing.T) {
	vs := scanner.Vendors()
	if !slices.IsSortedFunc(vs, func(a, b scanner.Vendor) int { return strings.Compare(a.VID, b.VID) }) {
		t.Error("vendor table is not sorted by VID")
	}
	for i, v := range vs {
		if len(v.VID) != 4 || strings.Trim(v.VID, "0123456789abcdef") != "" || v.Name == "" {
			t.Errorf("vendor %+v: want four lower-case hex digits and a name", v)
		}
		if i > 0 && vs[i-1].VID == v.VID {
			t.Errorf("VID %s twice", v.VID)
		}
	}
	for vid, want := range map[string]string{"0C2E": "Honeywell (Metrologic)", "05e0": "Zebra (Symbol)", "1eab": "Newland"} {
		if v, ok := scanner.LookupVendor(vid); !ok || v.Name != want || v.Bridge {
			t.Errorf("LookupVendor(%s) = (%+v, %v), want scanner maker %s", vid, v, ok, want)
		}
	}
	for _, vid := range []string{"0403", "067b", "10c4", "1a86"} {
		if v, ok := scanner.LookupVendor(vid); !ok || !v.Bridge {
			t.Errorf("LookupVendor(%s) = (%+v, %v), want a USB-serial bridge", vid, v, ok)
		}
	}
	if _, ok := scanner.LookupVendor("ffff"); ok {
		t.Error("LookupVendor(ffff) found a vendor")
	}
}
