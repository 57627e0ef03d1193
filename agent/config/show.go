package config

import (
	"bytes"
	_ "embed"
	"fmt"

	"gopkg.in/yaml.v3"
)

// Example is a commented config file with every key, for
// `tillsync-agent config example`.
//
//go:embed agent.example.yaml
var Example []byte

// Marshal writes the effective configuration as a config file, each value
// that is not a default commented with where it came from (# line 3,
// # TILLSYNC_AGENT_HUB, # --store).
func (c *Config) Marshal() ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(&c.File); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c.annotate(&doc, "")
	from := "defaults"
	if c.enrolled() {
		from += ", the data dir's enrollment"
	}
	if c.Path != "" {
		from += ", " + c.Path
	}
	doc.HeadComment = fmt.Sprintf("Effective tillsync-agent configuration: %s, then TILLSYNC_AGENT_* variables, then flags.\n"+
		"log.file, when not shown, is on for a service and off in a terminal.", from)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return buf.Bytes(), enc.Close()
}

func (c *Config) annotate(n *yaml.Node, prefix string) {
	if n.Kind != yaml.MappingNode {
		for _, ch := range n.Content {
			c.annotate(ch, prefix)
		}
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := join(prefix, k.Value)
		if v.Kind == yaml.MappingNode {
			c.annotate(v, key)
			continue
		}
		if s, ok := c.src[key]; ok {
			v.LineComment = s.String()
		}
	}
}

// enrolled reports whether a value came from the data dir's enrollment.
func (c *Config) enrolled() bool {
	for _, src := range c.src {
		if src.Kind == FromEnrollment {
			return true
		}
	}
	return false
}
