package config

import (
	"os"
	"path/filepath"
)

// DefaultPath is where tillsync-agent looks for its config file when
// neither --config nor TILLSYNC_AGENT_CONFIG names one.
func DefaultPath() string {
	base := os.Getenv("ProgramData")
	if base == "" {
		base = `C:\ProgramData`
	}
	return filepath.Join(base, "tillsync", "agent.yaml")
}
