package scanner

import (
	"slices"
	"strings"
)

// Vendor is a USB vendor id that ports and scan-test name for people.
type Vendor struct {
	// VID is four lower-case hex digits.
	VID string `json:"vid"`
	// Name is the maker as people know it, e.g. "Honeywell (Metrologic)".
	Name string `json:"name"`
	// Bridge marks the makers of USB-serial bridge chips: the port is an
	// adapter cable or a device built around one, not necessarily a scanner.
	Bridge bool `json:"bridge,omitempty"`
}

// vendors lists barcode scanner makers and USB-serial bridge chips by USB
// vendor id. Each id was checked against the usb.ids list of the Linux USB
// project (version 2025.07.26) or, where that has no entry, against the
// maker's own interface documentation; makers whose id could not be
// confirmed that way are left out rather than guessed.
var vendors = []Vendor{
	{VID: "0403", Name: "FTDI (USB-serial bridge)", Bridge: true},
	{VID: "0536", Name: "Honeywell (Hand Held Products)"},
	{VID: "05e0", Name: "Zebra (Symbol)"},
	{VID: "05f9", Name: "Datalogic (PSC)"},
	{VID: "065a", Name: "Opticon"},
	{VID: "067b", Name: "Prolific (USB-serial bridge)", Bridge: true},
	{VID: "067e", Name: "Honeywell (Intermec)"},
	{VID: "080c", Name: "Datalogic"},
	{VID: "08fb", Name: "Socket Mobile (Socket Communications)"},
	{VID: "0a5f", Name: "Zebra Technologies"},
	{VID: "0c2e", Name: "Honeywell (Metrologic)"},
	{VID: "10c4", Name: "Silicon Labs (USB-serial bridge)", Bridge: true},
	{VID: "11fa", Name: "Code Corporation"},
	{VID: "1a86", Name: "WCH / QinHeng (USB-serial bridge)", Bridge: true},
	{VID: "1eab", Name: "Newland"},
	{VID: "27dd", Name: "Mindeo"},
}

// LookupVendor returns what is known of the USB vendor id vid (any case).
func LookupVendor(vid string) (Vendor, bool) {
	vid = strings.ToLower(vid)
	i, ok := slices.BinarySearchFunc(vendors, vid, func(v Vendor, id string) int { return strings.Compare(v.VID, id) })
	if !ok {
		return Vendor{}, false
	}
	return vendors[i], true
}

// Vendors returns the vendor table, sorted by VID.
func Vendors() []Vendor { return slices.Clone(vendors) }
