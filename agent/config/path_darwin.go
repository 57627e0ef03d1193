package config

// DefaultPath is where tillsync-agent looks for its config file when
// neither --config nor TILLSYNC_AGENT_CONFIG names one.
func DefaultPath() string { return "/Library/Application Support/tillsync/agent.yaml" }
