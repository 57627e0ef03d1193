//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/creack/pty"
)

// demo holds the running pieces of the demo.
type demo struct {
	o        demoOptions
	out      io.Writer
	dir      string
	mqtt     string // hub's MQTT address
	hubHTTP  string
	posHTTP  string
	hub      *exec.Cmd
	agent    *exec.Cmd
	scanner  *os.File // pty master: the demo "is" the scanner
	scanSeq  uint64
	expected map[string]int64 // member -> points the till was told
	http     *http.Client
}

func runDemo(ctx context.Context, out io.Writer, o demoOptions) (err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	d := &demo{o: o, out: out, expected: map[string]int64{}, http: &http.Client{Timeout: 10 * time.Second}}
	for _, b := range []string{"tillsync-hub", "tillsync-agent"} {
		if _, err := os.Stat(filepath.Join(o.Bin, b)); err != nil {
			return fmt.Errorf("%s not found in %s; build it first (make build) or point --bin at it", b, o.Bin)
		}
	}
	d.dir = o.DataDir
	if d.dir == "" {
		if d.dir, err = os.MkdirTemp("", "tillsync-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(d.dir)
	}
	defer d.stopAll()

	d.step("Picking free loopback ports (1883 may well be taken by another broker)")
	d.mqtt, d.hubHTTP, d.posHTTP = freePort(), freePort(), freePort()
	d.say("hub MQTT %s, hub API http://%s, agent POS API http://%s", d.mqtt, d.hubHTTP, d.posHTTP)

	d.step("Starting tillsync-hub (embedded MQTT broker + bbolt ledger) in %s", filepath.Join(d.dir, "hub"))
	if err := d.startHub(); err != nil {
		return err
	}

	d.step("Opening a simulated serial barcode scanner (a pseudo-terminal)")
	master, slave, err := pty.Open()
	if err != nil {
		return fmt.Errorf("open a pseudo-terminal for the scanner: %w", err)
	}
	defer master.Close()
	defer slave.Close()
	d.scanner = master
	d.say("scanner port %s", slave.Name())

	d.step("Starting tillsync-agent for store demo-store / till-1 (partner: pharmacy)")
	if err := d.startAgent(slave.Name()); err != nil {
		return err
	}
	if err := d.waitHealth("the agent to connect to the hub and open the scanner", 15*time.Second, func(h health) bool {
		return h.HubConnected && h.Scanner.Connected
	}); err != nil {
		return err
	}

	d.step("Cashier scans member cards; the POS earns and burns through the agent")
	m1, err := d.scan("]C0M1001\r\n", "a Code 128 card, CRLF")
	if err != nil {
		return err
	}
	m2, err := d.scan("]Q1M1002\n", "a QR code, LF")
	if err != nil {
		return err
	}
	m3, err := d.scan("M1003\t", "a card without AIM prefix, TAB")
	if err != nil {
		return err
	}
	first, err := d.earn(m1, 2500, "R-1001", "sale-1")
	if err != nil {
		return err
	}
	if _, err := d.earn(m2, 12050, "R-1002", "sale-2"); err != nil {
		return err
	}
	if _, err := d.earn(m3, 899, "R-1003", "sale-3"); err != nil {
		return err
	}
	if _, err := d.burn(m2, 50, "R-1004"); err != nil {
		return err
	}
	if _, err := d.burn(m3, 100, "R-1005"); err != nil {
		return err
	}
	d.say("the POS retries sale-1 with the same Idempotency-Key:")
	again, err := d.post("/v1/earn", map[string]any{"member": m1, "amount": 2500, "currency": "EUR", "receipt": "R-1001"}, "sale-1")
	if err != nil {
		return err
	}
	same := again["tx_id"] == first["tx_id"]
	d.say("  same answer, tx %v, nothing added: %v", again["tx_id"], same)
	if !same {
		return errors.New("the repeated request created a second transaction")
	}

	d.step("Cutting the hub off (kill -9) for %s", d.o.Outage)
	d.hub.Process.Kill()
	d.hub.Wait()
	d.hub = nil
	if err := d.waitHealth("the agent to notice the hub is gone", 30*time.Second, func(h health) bool { return !h.HubConnected }); err != nil {
		return err
	}
	outageEnds := time.Now().Add(d.o.Outage)
	d.say("the till keeps accepting earns offline:")
	if _, err := d.earn(m1, 4000, "R-1006", "sale-6"); err != nil {
		return err
	}
	if _, err := d.earn(m3, 1500, "R-1007", "sale-7"); err != nil {
		return err
	}
	last, err := d.earn(m2, 999, "R-1008", "sale-8")
	if err != nil {
		return err
	}
	if _, err := d.burn(m1, 10, "R-1009"); err != nil {
		return err
	}
	if _, err := d.reverse(last["tx_id"].(string), "R-1008-return"); err != nil {
		return err
	}
	time.Sleep(time.Until(outageEnds))
	h, err := d.health()
	if err != nil {
		return err
	}
	d.say("agent backlog: %d transactions, oldest unsynced %.1fs ago, hub connected: %v", h.Backlog, h.OldestUnsyncedSeconds, h.HubConnected)

	d.step("Bringing the hub back")
	if err := d.startHub(); err != nil {
		return err
	}
	start := time.Now()
	lastShown := int64(-1)
	if err := d.waitHealth("the agent's backlog to drain", 60*time.Second, func(h health) bool {
		if h.Backlog != lastShown {
			d.say("backlog %d, hub connected: %v", h.Backlog, h.HubConnected)
			lastShown = h.Backlog
		}
		return h.HubConnected && h.Backlog == 0
	}); err != nil {
		return err
	}
	d.say("backlog zero %s after the hub came back", time.Since(start).Round(10*time.Millisecond))

	d.step("Balances as the hub's ledger has them")
	return d.report()
}

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "\n==> "+format+"\n", args...)
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "    "+format+"\n", args...)
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (d *demo) logTo(name string) (io.Writer, error) {
	if d.o.Verbose {
		return prefixWriter{d.out, "    [" + name + "] "}, nil
	}
	return os.OpenFile(filepath.Join(d.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
}

func (d *demo) start(name string, args ...string) (*exec.Cmd, error) {
	w, err := d.logTo(name)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(d.o.Bin, name), args...)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return cmd, nil
}

func (d *demo) startHub() error {
	cmd, err := d.start("tillsync-hub", "serve", "--data-dir", filepath.Join(d.dir, "hub"),
		"--mqtt-listen", d.mqtt, "--http-listen", d.hubHTTP)
	if err != nil {
		return err
	}
	d.hub = cmd
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := d.http.Get("http://" + d.hubHTTP + "/v1/health"); err == nil {
			resp.Body.Close()
			d.say("hub up (pid %d)", cmd.Process.Pid)
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the hub did not come up within 15s; see %s", filepath.Join(d.dir, "tillsync-hub.log"))
}

func (d *demo) startAgent(scanner string) error {
	cmd, err := d.start("tillsync-agent", "run", "--data-dir", filepath.Join(d.dir, "agent"),
		"--hub", "tcp://"+d.mqtt, "--store", "demo-store", "--terminal", "till-1", "--partner", "pharmacy",
		"--pos-listen", d.posHTTP, "--scanner", scanner, "--burn-timeout", "3s")
	if err != nil {
		return err
	}
	d.agent = cmd
	d.say("agent up (pid %d)", cmd.Process.Pid)
	return nil
}

// stopAll stops what is still running, politely first.
func (d *demo) stopAll() {
	for _, c := range []*exec.Cmd{d.agent, d.hub} {
		if c == nil || c.Process == nil {
			continue
		}
		c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.Process.Kill()
			<-done
		}
	}
}

type health struct {
	HubConnected          bool    `json:"hub_connected"`
	Backlog               int64   `json:"backlog"`
	OldestUnsyncedSeconds float64 `json:"oldest_unsynced_seconds"`
	Scanner               struct {
		Connected bool `json:"connected"`
	} `json:"scanner"`
}

func (d *demo) health() (health, error) {
	var h health
	resp, err := d.http.Get("http://" + d.posHTTP + "/v1/health")
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

func (d *demo) waitHealth(what string, timeout time.Duration, cond func(health) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		h, err := d.health()
		if err == nil && cond(h) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s; logs are in %s", timeout, what, d.dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scan types a barcode into the simulated scanner and reads it back from
// the agent's POS API, as the POS would.
func (d *demo) scan(raw, what string) (string, error) {
	if _, err := d.scanner.Write([]byte(raw)); err != nil {
		return "", fmt.Errorf("write to the scanner: %w", err)
	}
	var got struct {
		Scans []struct {
			Seq       uint64 `json:"seq"`
			Member    string `json:"member"`
			Symbology string `json:"symbology"`
		} `json:"scans"`
	}
	resp, err := d.http.Get(fmt.Sprintf("http://%s/v1/scans?after=%d&wait=5s", d.posHTTP, d.scanSeq))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return "", err
	}
	if len(got.Scans) == 0 {
		return "", fmt.Errorf("the agent reported no scan for %q", raw)
	}
	s := got.Scans[0]
	d.scanSeq = s.Seq
	sym := s.Symbology
	if sym == "" {
		sym = "none"
	}
	d.say("scan: %-8s (%s; symbology %s)", s.Member, what, sym)
	return s.Member, nil
}

func (d *demo) post(path string, body map[string]any, idemKey string) (map[string]any, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+d.posHTTP+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("POST %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST %s: %d %v", path, resp.StatusCode, out["error"])
	}
	return out, nil
}

func (d *demo) earn(member string, amount int64, receipt, idemKey string) (map[string]any, error) {
	r, err := d.post("/v1/earn", map[string]any{"member": member, "amount": amount, "currency": "EUR", "receipt": receipt}, idemKey)
	if err != nil {
		return nil, err
	}
	pts := int64(r["points"].(float64))
	d.expected[member] += pts
	d.say("earn    %-6s EUR %7.2f -> %s, %d points (tx %v)", member, float64(amount)/100, r["status"], pts, r["tx_id"])
	return r, nil
}

func (d *demo) burn(member string, points int64, receipt string) (map[string]any, error) {
	r, err := d.post("/v1/burn", map[string]any{"member": member, "points": points, "receipt": receipt}, receipt)
	if err != nil {
		return nil, err
	}
	line := fmt.Sprintf("burn    %-6s %d points -> %s", member, points, r["status"])
	if r["status"] == "approved" {
		d.expected[member] -= points
		line += fmt.Sprintf(", balance now %v", r["balance"])
	} else {
		line += fmt.Sprintf(" (%v)", r["code"])
	}
	d.say("%s", line)
	return r, nil
}

func (d *demo) reverse(original, receipt string) (map[string]any, error) {
	r, err := d.post("/v1/reverse", map[string]any{"original": original, "receipt": receipt}, receipt)
	if err != nil {
		return nil, err
	}
	pts := int64(r["points"].(float64))
	d.expected[r["member"].(string)] -= pts
	d.say("reverse %-6s %d points of %s (a return) -> %s", r["member"], pts, original, r["status"])
	return r, nil
}

func (d *demo) report() error {
	members := make([]string, 0, len(d.expected))
	for m := range d.expected {
		members = append(members, m)
	}
	sort.Strings(members)
	fmt.Fprintf(d.out, "    %-8s %12s %12s\n", "member", "hub ledger", "till said")
	bad := 0
	for _, m := range members {
		var b struct {
			Points int64 `json:"points"`
		}
		resp, err := d.http.Get("http://" + d.hubHTTP + "/v1/members/" + m + "/balance")
		if err != nil {
			return err
		}
		err = json.NewDecoder(resp.Body).Decode(&b)
		resp.Body.Close()
		if err != nil {
			return err
		}
		mark := "ok"
		if b.Points != d.expected[m] {
			mark, bad = "MISMATCH", bad+1
		}
		fmt.Fprintf(d.out, "    %-8s %12d %12d  %s\n", m, b.Points, d.expected[m], mark)
	}
	var st struct {
		Stores []struct {
			Store  string `json:"store"`
			InSync bool   `json:"in_sync"`
		} `json:"stores"`
	}
	if resp, err := d.http.Get("http://" + d.hubHTTP + "/v1/stores"); err == nil {
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		for _, s := range st.Stores {
			d.say("store %s in sync: %v", s.Store, s.InSync)
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d member balance(s) differ between the hub and the till; logs are in %s", bad, d.dir)
	}
	fmt.Fprintln(d.out, "\nEvery transaction the till accepted is in the hub's ledger exactly once.")
	return nil
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fmt.Fprintln(p.w, p.prefix+strings.TrimRight(sc.Text(), "\r"))
	}
	return len(b), nil
}
