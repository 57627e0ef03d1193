//go:build darwin && !cgo

package scanner

import (
	"fmt"

	"go.bug.st/serial"
)

// USBDetails reports whether ListPorts can tell USB VID, PID and serial
// number in this build. It is false here: macOS built without cgo has no
// IOKit access, so ports are listed by name only and a scanner cannot be
// chosen by its USB identity.
const USBDetails = false

// ListPorts lists the serial ports by name only (USB field empty): this
// build has no USB details; see USBDetails.
func ListPorts() ([]PortInfo, error) {
	names, err := serial.GetPortsList()
	if err != nil {
		return nil, fmt.Errorf("scanner: list serial ports: %w", err)
	}
	out := make([]PortInfo, 0, len(names))
	for _, n := range names {
		out = append(out, PortInfo{Name: n})
	}
	return out, nil
}
