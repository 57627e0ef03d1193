package cli

import "path/filepath"

// DefaultDataDir is where app keeps its data unless told otherwise.
func DefaultDataDir(app string) string {
	return filepath.Join("/Library/Application Support/tillsync", app)
}
