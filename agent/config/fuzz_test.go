package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/agent/config"
	"github.com/tillsync/tillsync/protocol/fuzzlimit"
)

// FuzzLoad: whatever a config file holds, Load and Check answer with
// problems, one line each, and never panic; a file Load reads without
// problems marshals to text that loads to the same values.
func FuzzLoad(f *testing.F) {
	f.Add(string(config.Example))
	for _, s := range []string{
		"", "store: s1\nterminal: t1\npartner: p1\n", "scanner:\n  baud: -1\n", "hub: http://x\n", "store: [a, b]\n",
		"offline:\n  member_allowance: 50\n  store_cap: 10\n", "a: &x 1\nb: *x\n", "--- \nstore: s\n---\nstore: t\n",
		"store: s/1\nterminal: \"t\\u0001\"\n", "log:\n  level: loud\n", "\t- x", "store: 1e400\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		fuzzlimit.Check(t)
		if len(data) > config.MaxBytes {
			return
		}
		path := filepath.Join(t.TempDir(), "agent.yaml")
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		c, probs, err := config.Load(config.Options{Path: path})
		if err != nil {
			return // the file as a whole cannot be read
		}
		probs = append(probs, c.Check()...)
		for _, p := range probs {
			if strings.Contains(p.String(), "\n") {
				t.Fatalf("a problem of more than one line: %q", p.String())
			}
		}
		if len(probs) > 0 {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("marshal a clean config: %v", err)
		}
		if err := os.WriteFile(path, out, 0o600); err != nil {
			t.Fatal(err)
		}
		c2, probs2, err := config.Load(config.Options{Path: path})
		if err != nil || len(probs2) > 0 || !reflect.DeepEqual(c2.File, c.File) {
			t.Fatalf("the marshalled config does not load the same: %v %q\n%s", err, probs2, out)
		}
	})
}
