package scanner

import (
	"fmt"
	"strings"
)

// USBMatch selects a scanner by its USB identity instead of a port name, so
// that the agent finds it again when its COM or tty name changes. VID and
// PID are four hex digits (lower case); Serial, when set, must match too.
type USBMatch struct {
	VID    string `yaml:"vid" json:"vid"`
	PID    string `yaml:"pid" json:"pid"`
	Serial string `yaml:"serial,omitempty" json:"serial,omitempty"`
}

// PortInfo describes one serial port as the enumerator sees it. VID and PID
// are four lower-case hex digits, or "" when the port is not on USB (a
// built-in RS-232 port, a pseudo-terminal) or the platform cannot tell.
type PortInfo struct {
	// Name is what Options.Port takes: "COM3", "/dev/ttyACM0", "/dev/cu.usbmodem1101".
	Name string `json:"name"`
	// USB reports whether the port belongs to a USB device.
	USB bool `json:"usb"`
	// VID and PID identify the USB device's vendor and product.
	VID string `json:"vid,omitempty"`
	PID string `json:"pid,omitempty"`
	// SerialNumber is the USB serial number, when the device has one.
	SerialNumber string `json:"serial_number,omitempty"`
	// Manufacturer and Product are the device's own USB strings, when the
	// platform reports them without probing the device (Linux, macOS; on
	// Windows Product is the port's friendly name).
	Manufacturer string `json:"manufacturer,omitempty"`
	Product      string `json:"product,omitempty"`
}

// Matches reports whether p is the device m selects: same VID and PID (case
// does not matter) and, when m.Serial is set, the same serial number.
func (m USBMatch) Matches(p PortInfo) bool {
	if m.IsZero() || !p.USB {
		return false
	}
	return strings.EqualFold(m.VID, p.VID) && strings.EqualFold(m.PID, p.PID) &&
		(m.Serial == "" || m.Serial == p.SerialNumber)
}

// IsZero reports whether m selects nothing.
func (m USBMatch) IsZero() bool { return m == USBMatch{} }

// String gives m as ParseUSBMatch reads it: "0c2e:0b61" or "0c2e:0b61:SERIAL".
func (m USBMatch) String() string {
	if m.Serial != "" {
		return m.VID + ":" + m.PID + ":" + m.Serial
	}
	return m.VID + ":" + m.PID
}

// ParseUSBMatch reads "VID:PID" or "VID:PID:SERIAL" with VID and PID as
// four hex digits each.
func ParseUSBMatch(s string) (USBMatch, error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) < 2 {
		return USBMatch{}, fmt.Errorf("usb %q: want VID:PID or VID:PID:SERIAL, e.g. 0c2e:0b61", s)
	}
	m := USBMatch{VID: strings.ToLower(parts[0]), PID: strings.ToLower(parts[1])}
	if len(parts) == 3 {
		m.Serial = parts[2]
	}
	return m, m.Validate()
}

// Validate checks VID and PID are four hex digits and Serial is printable.
func (m USBMatch) Validate() error {
	for _, f := range [...]struct{ name, v string }{{"vid", m.VID}, {"pid", m.PID}} {
		if len(f.v) != 4 || strings.Trim(strings.ToLower(f.v), "0123456789abcdef") != "" {
			return fmt.Errorf("usb %s %q: want four hex digits, e.g. 0c2e", f.name, f.v)
		}
	}
	if len(m.Serial) > 128 || strings.ContainsFunc(m.Serial, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("usb serial %q: at most 128 printable characters", m.Serial)
	}
	return nil
}

// CheckDigit is the check digit scheme of the coalition's member card
// numbers. With CheckLuhn or CheckMod11 a member number is all digits, the
// last one being the check digit; see Valid.
type CheckDigit string

// The check digit schemes.
const (
	CheckNone  CheckDigit = "none"  // no check digit: any valid id is a member id
	CheckLuhn  CheckDigit = "luhn"  // Luhn (mod 10), as on payment cards
	CheckMod11 CheckDigit = "mod11" // mod 11 with weights 2..7 from the right
)

// ParseCheckDigit reads a scheme name; "" is CheckNone.
func ParseCheckDigit(s string) (CheckDigit, error) {
	switch c := CheckDigit(strings.ToLower(s)); c {
	case "", CheckNone:
		return CheckNone, nil
	case CheckLuhn, CheckMod11:
		return c, nil
	}
	return "", fmt.Errorf("check digit %q: want none, luhn or mod11", s)
}
