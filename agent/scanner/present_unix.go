//go:build unix

package scanner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// portPresent returns an error when the device node for name is gone: the
// USB device was unplugged, or a /dev/serial/by-id link was removed. Other
// stat failures are not taken as proof of absence.
func portPresent(name string) error {
	if _, err := os.Stat(name); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("scanner: %s: %w: %w", name, ErrVanished, err)
	}
	return nil
}
