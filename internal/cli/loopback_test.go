package cli_test

import (
	"testing"

	"github.com/tillsync/tillsync/internal/cli"
)

func TestLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:1883": true, "127.8.0.1:1883": true, "[::1]:1883": true, "localhost:8080": true, "LOCALHOST:1": true,
		"0.0.0.0:1883": false, ":1883": false, "[::]:1883": false, "10.0.0.5:1883": false, "hub.example.com:1883": false,
		"127.0.0.1": false, "": false,
	} {
		if got := cli.LoopbackAddr(addr); got != want {
			t.Errorf("LoopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}
