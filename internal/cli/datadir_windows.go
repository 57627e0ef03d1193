package cli

import (
	"os"
	"path/filepath"
)

// DefaultDataDir is where app keeps its data unless told otherwise.
func DefaultDataDir(app string) string {
	base := os.Getenv("ProgramData")
	if base == "" {
		base = `C:\ProgramData`
	}
	return filepath.Join(base, "tillsync", app)
}
