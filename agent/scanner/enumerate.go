//go:build !darwin || cgo

package scanner

import (
	"fmt"
	"strings"

	"go.bug.st/serial/enumerator"
)

// USBDetails reports whether ListPorts can tell USB VID, PID and serial
// number in this build. It is false only on macOS built without cgo, where
// go.bug.st/serial's enumerator (IOKit, through cgo) is not available.
const USBDetails = true

// ListPorts lists the serial ports with their USB identity. It reads what
// the OS already knows (sysfs, IOKit, SetupAPI) and never sends anything to
// a device: no "active probing", which can upset some devices.
func ListPorts() ([]PortInfo, error) {
	ds, err := enumerator.GetDetailedPortsList()
	if err != nil {
		return nil, fmt.Errorf("scanner: list serial ports: %w", err)
	}
	out := make([]PortInfo, 0, len(ds))
	for _, d := range ds {
		if d == nil || d.Name == "" {
			continue // Linux reports a tty without a device directory as a blank entry
		}
		out = append(out, PortInfo{
			Name:         d.Name,
			USB:          d.IsUSB,
			VID:          strings.ToLower(d.VID),
			PID:          strings.ToLower(d.PID),
			SerialNumber: d.SerialNumber,
			Manufacturer: d.Manufacturer,
			Product:      d.Product,
		})
	}
	return out, nil
}
