//go:build unix

package main

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

type health struct {
	Store        string `json:"store"`
	HubConnected bool   `json:"hub_connected"`
	Backlog      int64  `json:"backlog"`
}

func getHealth(addr string) (health, bool) {
	var h health
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/v1/health")
	if err != nil {
		return h, false
	}
	defer resp.Body.Close()
	return h, resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&h) == nil
}

// The agent works offline: with nobody at --hub it still starts, serves the
// POS API, reports the hub as not connected, and stops cleanly.
func TestRunOffline(t *testing.T) {
	t.Parallel()
	for _, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			pos := freeAddr(t)
			p := start(t, runArgs("--data-dir", t.TempDir(), "--hub", "tcp://"+freeAddr(t), "--pos-listen", pos)...)
			var h health
			p.WaitFor(t, 10*time.Second, "the POS API's /v1/health to answer", func() bool {
				var ok bool
				h, ok = getHealth(pos)
				return ok
			})
			if h.HubConnected || h.Store != "s1" {
				t.Errorf("health = %+v, want store s1 and hub_connected false", h)
			}

			// `status` reads the same health a person would ask for.
			out := run(t, "status", "--pos", pos).OK(t)
			if !strings.Contains(out, `"hub_connected": false`) {
				t.Errorf("status printed:\n%s\nwant hub_connected false", out)
			}

			if err := p.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := p.ExitCode(t, 5*time.Second); code != 0 {
				t.Errorf("exit %d after %s, want 0; output:\n%s", code, sig, p.Output())
			}
		})
	}
}

func TestDataDirInUse(t *testing.T) {
	t.Parallel()
	dir, hub := t.TempDir(), "tcp://"+freeAddr(t)
	pos := freeAddr(t)
	p := start(t, runArgs("--data-dir", dir, "--hub", hub, "--pos-listen", pos)...)
	p.WaitFor(t, 10*time.Second, "the POS API to answer", func() bool { _, ok := getHealth(pos); return ok })
	run(t, runArgs("--data-dir", dir, "--hub", hub, "--pos-listen", "127.0.0.1:0")...).
		OneLine(t, 1, dir, "in use", "same data dir")
	p.Signal(syscall.SIGTERM)
	if code := p.ExitCode(t, 5*time.Second); code != 0 {
		t.Errorf("first agent: exit %d after SIGTERM, want 0; output:\n%s", code, p.Output())
	}
}
