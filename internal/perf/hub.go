package perf

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/hub/ingest"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/seedfile"
	"github.com/tillsync/tillsync/internal/proc"
)

// Creds are what one enrolled terminal connects with.
type Creds struct {
	Store, Terminal, Partner string
	Username, Password       string
	MACKey                   []byte
}

// Coalition is a provisioned hub data dir, never run itself: each
// scenario runs a hub on a copy of it (Hub), so that every figure starts
// from the same ledger.
type Coalition struct {
	// Dir is the data dir to copy.
	Dir string
	// Terminals are the enrolled terminals.
	Terminals []Creds
}

// Partners of the bench's coalition; stores take them in turn.
var partners = []string{"pharmacy", "cafe", "fuel"}

// Provision makes a hub data dir in dir with stores stores of one till
// each, every one of them enrolled as an installer would have it done (a
// one-time token, redeemed with the till's key), and returns their
// credentials. It reports its progress to progress.
func Provision(dir string, stores int, progress io.Writer) (*Coalition, error) {
	hubDir := filepath.Join(dir, "hub")
	if err := os.MkdirAll(hubDir, 0o700); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(`{"coalition": {"name": "Bench Coalition", "currency": "EUR", "point_value": "0.01", "expiry_months": 24}, "partners": [`)
	for i, p := range partners {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id": %q, "name": %q, "rules": {"points": 1, "per": 100, "rounding": "down"}, "stores": [`, p, p)
		first := true
		for s := i; s < stores; s += len(partners) {
			if !first {
				b.WriteString(",")
			}
			first = false
			fmt.Fprintf(&b, `{"id": %q, "terminals": ["t1"]}`, storeID(s))
		}
		b.WriteString("]}")
	}
	b.WriteString("]}")
	seed, err := seedfile.Parse([]byte(b.String()))
	if err != nil {
		return nil, fmt.Errorf("perf: the bench's seed: %w", err)
	}
	l, err := ledger.OpenBolt(filepath.Join(hubDir, "ledger.db"), ledger.BoltOptions{})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	now := time.Now()
	if _, err := l.LoadSeed(seed, now); err != nil {
		return nil, fmt.Errorf("perf: load the seed: %w", err)
	}
	c := &Coalition{Dir: hubDir}
	start, last := time.Now(), time.Now()
	for s := range stores {
		tok, err := l.IssueEnrollmentToken(storeID(s), "t1", time.Hour, now)
		if err != nil {
			return nil, err
		}
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		cr, err := l.Enroll(tok.ID, tok.Secret, pub, now)
		if err != nil {
			return nil, err
		}
		c.Terminals = append(c.Terminals, Creds{Store: cr.Store, Terminal: cr.Terminal, Partner: cr.Partner,
			Username: cr.Username, Password: cr.Password, MACKey: cr.MACKey})
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			fmt.Fprintf(progress, "  enrolled %d of %d terminals (%v)\n", s+1, stores, time.Since(start).Round(time.Second))
		}
	}
	return c, nil
}

// storeID names the bench's store number i.
func storeID(i int) string { return fmt.Sprintf("s%05d", i) }

// HubOptions configure one hub of a scenario.
type HubOptions struct {
	// Bin is the directory holding tillsync-hub.
	Bin string
	// Coalition is copied into Dir for the hub's data.
	Coalition *Coalition
	Dir       string
	// BrokerOnly runs the broker with nothing behind it (the baseline).
	BrokerOnly bool
	// Mosquitto, when set, is an external broker the hub uses instead of
	// its own.
	Mosquitto *Mosquitto
	// Pprof serves the hub's profiler on a loopback port (Hub.Pprof).
	Pprof bool
	// Args are more flags for serve.
	Args []string
}

// Hub is a tillsync-hub serve process of a scenario.
type Hub struct {
	p *proc.Proc
	// MQTT is the broker address tills dial (tls://…), HTTP the hub's API.
	MQTT, HTTP, Pprof string
	// TLS verifies the hub's certificate (or Mosquitto's, which is the
	// hub's); CA is its CA certificate, as a till gets it at enrollment.
	TLS  *tls.Config
	CA   []byte
	dir  string
	args []string
}

// StartHub runs a hub on a copy of the coalition in o.Dir (with
// o.Mosquitto: on the data dir Mosquitto's setup was written from), and
// returns once its API answers.
func StartHub(ctx context.Context, o HubOptions) (*Hub, error) {
	if o.Mosquitto != nil {
		o.Dir = o.Mosquitto.HubDir
	} else if err := copyDir(o.Coalition.Dir, o.Dir); err != nil {
		return nil, err
	}
	h := &Hub{dir: o.Dir, p: &proc.Proc{Name: "hub", Bin: filepath.Join(o.Bin, proc.Exe("tillsync-hub")), Log: o.Dir + ".log", StopTimeout: time.Minute}}
	var err error
	if h.HTTP, err = proc.FreePort(); err != nil {
		return nil, err
	}
	args := []string{"serve", "--data-dir", o.Dir, "--http-listen", h.HTTP, "--log-level", "warn"}
	if o.Mosquitto != nil {
		args = append(args, "--broker", "tcp://"+o.Mosquitto.Plain, "--broker-username", "tillsync-hub",
			"--broker-password-file", filepath.Join(o.Mosquitto.HubDir, "broker-hub.password"))
		h.MQTT = "tls://" + o.Mosquitto.TLS
	} else {
		mqtt, err := proc.FreePort()
		if err != nil {
			return nil, err
		}
		args = append(args, "--mqtt-listen", mqtt)
		h.MQTT = "tls://" + mqtt
	}
	if o.BrokerOnly {
		args = append(args, "--bench-broker-only")
	}
	if o.Pprof {
		if h.Pprof, err = proc.FreePort(); err != nil {
			return nil, err
		}
		args = append(args, "--pprof-listen", h.Pprof)
	}
	h.args = append(args, o.Args...)
	err = h.start(ctx)
	if err == nil {
		if h.CA, err = os.ReadFile(filepath.Join(o.Dir, "pki", "ca.pem")); err == nil {
			h.TLS, err = agent.HubTLSConfig(h.MQTT, h.CA)
		}
	}
	if err != nil {
		h.p.Kill()
		return nil, err
	}
	return h, nil
}

// start starts the hub process and waits until its API answers.
func (h *Hub) start(ctx context.Context) error {
	if err := h.p.Start(h.args...); err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Second}
	return proc.WaitFor(ctx, time.Minute, "the hub to answer", func() (bool, error) {
		if !h.p.Running() {
			return false, fmt.Errorf("perf: the hub exited at its start; see %s", h.p.Log)
		}
		resp, err := client.Get("http://" + h.HTTP + "/healthz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// Restart starts the stopped hub again, on the same data and addresses,
// and returns once its API answers.
func (h *Hub) Restart(ctx context.Context) error { return h.start(ctx) }

// Pid is the hub's process id.
func (h *Hub) Pid() int { return h.p.Pid() }

// Stop stops the hub as an operator does (SIGTERM): it commits and acks
// what it took.
func (h *Hub) Stop() error { return h.p.Stop() }

// Kill stops the hub as a crash does.
func (h *Hub) Kill() { h.p.Kill() }

// Ledger opens the hub's ledger, read-only, once the hub has stopped.
func (h *Hub) Ledger() (*ledger.BoltStore, error) {
	return ledger.OpenBolt(filepath.Join(h.dir, "ledger.db"), ledger.BoltOptions{ReadOnly: true})
}

// get asks the hub's API for path with the operator's token; the caller
// closes the answer's body.
func (h *Hub) get(ctx context.Context, path string) (*http.Response, error) {
	tok, err := os.ReadFile(filepath.Join(h.dir, "operator.token"))
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.HTTP+path, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err == nil && resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		err = fmt.Errorf("perf: GET %s: %s", path, resp.Status)
	}
	return resp, err
}

// Stats reads the hub's ingest counters from its API.
func (h *Hub) Stats(ctx context.Context) (ingest.Stats, error) {
	resp, err := h.get(ctx, "/v1/health")
	if err != nil {
		return ingest.Stats{}, err
	}
	defer resp.Body.Close()
	var body struct {
		Ingest ingest.Stats `json:"ingest"`
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	return body.Ingest, err
}

// copyDir copies the tree of files under src (a hub's data dir) into dst,
// owner-only.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, 0o600)
	})
}
