//go:build windows

package scanner

import (
	"fmt"
	"strings"

	"go.bug.st/serial"
)

// portPresent returns an error when the enumerator no longer lists name
// ("COM3"). An unplugged USB-serial adapter on Windows often keeps answering
// reads with timeouts, so this is how Run notices it. An enumerator failure
// is not taken as proof of absence.
func portPresent(name string) error {
	ports, err := serial.GetPortsList()
	if err != nil {
		return nil
	}
	want := strings.TrimPrefix(name, `\\.\`)
	for _, p := range ports {
		if strings.EqualFold(strings.TrimPrefix(p, `\\.\`), want) {
			return nil
		}
	}
	return fmt.Errorf("scanner: %s: %w from the port list", name, ErrVanished)
}
