//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/tillsync/tillsync/hub/pki"
	"github.com/tillsync/tillsync/internal/chaos"
)

// demoCoalition is the seed the demo's hub starts with: three partners,
// their stores and earn rules.
//
//go:embed demo-coalition.yaml
var demoCoalition []byte

// The demo's two tills: a pharmacy till with the scanner, and a café till.
const (
	pharmacy = "greencross"
	cafe     = "bean-bar"
	// cafeWelcome is bean-bar's new_partner_bonus in demo-coalition.yaml:
	// the hub adds it on a member's first earn at the café when they have
	// earned elsewhere; a till cannot know that, so it does not quote it.
	cafeWelcome = 100
)

// till is one running agent of the demo.
type till struct {
	name, store, terminal, partner string
	pos                            string // POS API address
	cmd                            *exec.Cmd
}

// demo holds the running pieces of the demo.
type demo struct {
	o        demoOptions
	out      io.Writer
	dir      string
	mqtt     string // hub's MQTT address
	hubHTTP  string
	hubToken string // the operator API token the hub made, for the demo's requests to its API
	hub      *exec.Cmd
	tills    map[string]*till // by partner
	scanner  *os.File         // pty master: the demo "is" the scanner
	scanSeq  uint64
	expected map[string]int64           // member -> points the tills were told (plus hub bonuses)
	earnedAt map[string]map[string]bool // member -> partners the member has earned at
	http     *http.Client
}

func runDemo(ctx context.Context, out io.Writer, o demoOptions) (err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	d := &demo{o: o, out: out, expected: map[string]int64{}, earnedAt: map[string]map[string]bool{}, http: &http.Client{Timeout: 10 * time.Second}}
	if err := chaos.CheckBin(o.Bin); err != nil {
		return err
	}
	d.dir = o.DataDir
	if d.dir == "" {
		if d.dir, err = os.MkdirTemp("", "tillsync-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(d.dir)
	}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return err
	}
	defer d.stopAll()

	d.step("Picking free loopback ports (the default ones may well be taken)")
	d.mqtt, d.hubHTTP = freePort(), freePort()
	d.tills = map[string]*till{
		pharmacy: {name: "pharmacy", store: "gc-berlin-01", terminal: "till-1", partner: pharmacy, pos: freePort()},
		cafe:     {name: "cafe", store: "bb-central", terminal: "pos-1", partner: cafe, pos: freePort()},
	}
	d.say("hub MQTT over TLS tls://%s, hub API http://%s, POS APIs http://%s (pharmacy) and http://%s (cafe)", d.mqtt, d.hubHTTP, d.tills[pharmacy].pos, d.tills[cafe].pos)

	seed := filepath.Join(d.dir, "demo-coalition.yaml")
	if err := os.WriteFile(seed, demoCoalition, 0o600); err != nil {
		return err
	}
	d.step("Starting tillsync-hub (embedded MQTT broker over TLS + bbolt ledger) with the coalition in %s", seed)
	if err := d.startHub("--seed", seed); err != nil {
		return err
	}
	caPEM, err := os.ReadFile(d.hubCA())
	if err != nil {
		return fmt.Errorf("the hub's CA: %w", err)
	}
	block, _ := pem.Decode(caPEM)
	if block == nil {
		return fmt.Errorf("the hub's CA %s holds no certificate", d.hubCA())
	}
	d.say("the hub made its own CA at its first start: %s (sha256 %s…); an enrollment token carries its fingerprint, the tills receive it at enrollment and verify the hub's certificate against it", d.hubCA(), pki.Fingerprint(block.Bytes)[:16])
	tokenFile := filepath.Join(d.dir, "hub", "operator.token")
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return fmt.Errorf("the hub's operator API token: %w", err)
	}
	d.hubToken = strings.TrimSpace(string(tok))
	tokenID := strings.Split(d.hubToken, ".")[1]
	d.say("and an operator API token (id %s) in %s, owner-only: every request to its HTTP API carries one (Authorization: Bearer), the demo's too", tokenID, tokenFile)
	if err := d.showCoalition(); err != nil {
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

	gc, bb := d.tills[pharmacy], d.tills[cafe]
	d.step("Enrolling the two tills: a one-time token from the hub, redeemed on each till for its own credentials")
	for _, tl := range []*till{gc, bb} {
		if err := d.enroll(tl); err != nil {
			return err
		}
	}

	d.step("Starting two tills: %s/%s at GreenCross (with the scanner) and %s/%s at Bean Bar", gc.store, gc.terminal, bb.store, bb.terminal)
	if err := d.startAgent(gc, "--scanner", slave.Name()); err != nil {
		return err
	}
	if err := d.startAgent(bb); err != nil {
		return err
	}
	for _, tl := range []*till{gc, bb} {
		if err := d.waitHealth(tl, "the "+tl.name+" till to connect and receive its partner's earn rules", 15*time.Second, func(h health) bool {
			return h.HubConnected && h.RulesVersion > 0 && (tl != gc || h.Scanner.Connected)
		}); err != nil {
			return err
		}
		d.say("%s till: connected over TLS as its enrolled terminal (hub certificate verified), pricing with %s rules version 1 pushed by the hub", tl.name, tl.partner)
	}

	d.step("Cashier scans member cards; the POS earns and burns through the agents")
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
	first, err := d.earn(gc, m1, 2500, "R-1001", "sale-1", nil, "")
	if err != nil {
		return err
	}
	if _, err := d.earn(gc, m2, 12050, "R-1002", "sale-2", []map[string]any{
		{"sku": "PZN-0815", "category": "rx", "amount": 4050},
		{"sku": "LIP-22", "category": "beauty", "amount": 8000},
	}, "a prescription (earns nothing) and beauty (double points)"); err != nil {
		return err
	}
	if _, err := d.earn(gc, m3, 899, "R-1003", "sale-3", nil, ""); err != nil {
		return err
	}
	d.say("the POS retries sale-1 with the same Idempotency-Key:")
	again, err := d.post(gc, "/v1/earn", map[string]any{"member": m1, "amount": 2500, "currency": "EUR", "receipt": "R-1001"}, "sale-1")
	if err != nil {
		return err
	}
	same := again["tx_id"] == first["tx_id"]
	d.say("  same answer, tx %v, nothing added: %v", again["tx_id"], same)
	if !same {
		return errors.New("the repeated request created a second transaction")
	}
	if err := d.waitHealth(gc, "the pharmacy till to sync", 15*time.Second, func(h health) bool { return h.Backlog == 0 }); err != nil {
		return err
	}
	d.say("at the cafe: %s redeems pharmacy points, %s earns there for the first time", m2, m1)
	if _, err := d.burn(bb, m2, 150, "C-2001"); err != nil {
		return err
	}
	if _, err := d.burn(bb, m3, 100, "C-2002"); err != nil {
		return err
	}
	if _, err := d.earn(bb, m1, 640, "C-2003", "cafe-3", nil, ""); err != nil {
		return err
	}

	d.step("Cutting the hub off (kill -9) for %s", d.o.Outage)
	d.hub.Process.Kill()
	d.hub.Wait()
	d.hub = nil
	if err := d.waitHealth(gc, "the till to notice the hub is gone", 30*time.Second, func(h health) bool { return !h.HubConnected }); err != nil {
		return err
	}
	outageEnds := time.Now().Add(d.o.Outage)
	d.say("the tills keep accepting earns offline, priced with the rules they were pushed:")
	if _, err := d.earn(gc, m1, 4000, "R-1006", "sale-6", nil, ""); err != nil {
		return err
	}
	if _, err := d.earn(gc, m3, 1500, "R-1007", "sale-7", nil, ""); err != nil {
		return err
	}
	last, err := d.earn(gc, m2, 999, "R-1008", "sale-8", nil, "")
	if err != nil {
		return err
	}
	if _, err := d.earn(bb, m2, 480, "C-2004", "cafe-4", nil, ""); err != nil {
		return err
	}
	if _, err := d.burn(gc, m1, 10, "R-1009"); err != nil {
		return err
	}
	if _, err := d.reverse(gc, last["tx_id"].(string), "R-1008-return"); err != nil {
		return err
	}
	time.Sleep(time.Until(outageEnds))
	for _, tl := range []*till{gc, bb} {
		h, err := d.health(tl)
		if err != nil {
			return err
		}
		d.say("%s till backlog: %d transactions, oldest unsynced %.1fs ago, hub connected: %v", tl.name, h.Backlog, h.OldestUnsyncedSeconds, h.HubConnected)
	}

	d.step("Bringing the hub back (it reloads its CA and certificate from its data dir)")
	if err := d.startHub(); err != nil {
		return err
	}
	start := time.Now()
	for _, tl := range []*till{gc, bb} {
		lastShown := int64(-1)
		if err := d.waitHealth(tl, "the "+tl.name+" till's backlog to drain", 60*time.Second, func(h health) bool {
			if h.Backlog != lastShown {
				d.say("%s backlog %d, hub connected: %v", tl.name, h.Backlog, h.HubConnected)
				lastShown = h.Backlog
			}
			return h.HubConnected && h.Backlog == 0
		}); err != nil {
			return err
		}
	}
	d.say("both backlogs zero %s after the hub came back", time.Since(start).Round(10*time.Millisecond))

	d.step("Balances as the hub's ledger has them")
	if err := d.report(); err != nil {
		return err
	}
	d.step("Settlement between the partners for today, and the ledger's own check")
	return d.settle()
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

func (d *demo) start(logName, name string, args ...string) (*exec.Cmd, error) {
	w, err := d.logTo(logName)
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

func (d *demo) startHub(extra ...string) error {
	args := append([]string{"serve", "--data-dir", filepath.Join(d.dir, "hub"), "--mqtt-listen", d.mqtt, "--http-listen", d.hubHTTP}, extra...)
	cmd, err := d.start("tillsync-hub", "tillsync-hub", args...)
	if err != nil {
		return err
	}
	d.hub = cmd
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := d.http.Get("http://" + d.hubHTTP + "/healthz"); err == nil {
			resp.Body.Close()
			d.say("hub up (pid %d)", cmd.Process.Pid)
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the hub did not come up within 15s; see %s", filepath.Join(d.dir, "tillsync-hub.log"))
}

// hubCA is the CA certificate the hub makes in its data dir at its first start.
func (d *demo) hubCA() string { return filepath.Join(d.dir, "hub", "pki", "ca.pem") }

func (d *demo) startAgent(tl *till, extra ...string) error {
	// The data dir names the terminal, the hub's broker and its CA: enrollment put them there.
	args := append([]string{"run", "--data-dir", d.agentDir(tl), "--pos-listen", tl.pos, "--burn-timeout", "3s"}, extra...)
	cmd, err := d.start("tillsync-agent-"+tl.name, "tillsync-agent", args...)
	if err != nil {
		return err
	}
	tl.cmd = cmd
	d.say("%s agent up (pid %d)", tl.name, cmd.Process.Pid)
	return nil
}

func (d *demo) agentDir(tl *till) string { return filepath.Join(d.dir, "agent-"+tl.name) }

// enroll registers tl's terminal at the hub for a one-time token
// (tillsync-hub terminal token) and redeems it on the till
// (tillsync-agent enroll), as an installer would.
func (d *demo) enroll(tl *till) error {
	out, err := d.runCmd("tillsync-hub", "terminal", "token", "--hub", "http://"+d.hubHTTP, "--data-dir", filepath.Join(d.dir, "hub"),
		"--store", tl.store, "--terminal", tl.terminal, "--expires-in", "10m")
	if err != nil {
		return err
	}
	tok := enrollTokenRE.FindString(out)
	if tok == "" {
		return fmt.Errorf("tillsync-hub terminal token printed no token:\n%s", out)
	}
	d.say("tillsync-hub terminal token --store %s --terminal %s  ->  %s…", tl.store, tl.terminal, tok[:min(len(tok), 20)])
	if out, err = d.runCmd("tillsync-agent", "enroll", "--hub", "http://"+d.hubHTTP, "--token", tok, "--data-dir", d.agentDir(tl)); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		d.say("  %s", line)
	}
	return nil
}

// enrollTokenRE finds an enrollment token in terminal token's output.
var enrollTokenRE = regexp.MustCompile(`TSE1\.[A-Za-z0-9._-]+`)

// runCmd runs one of the demo's binaries to the end and returns what it
// printed; a failure carries its output.
func (d *demo) runCmd(name string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(d.o.Bin, name), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args[:2], " "), err, out.String())
	}
	return out.String(), nil
}

// stopAll stops what is still running, politely first.
func (d *demo) stopAll() {
	cmds := []*exec.Cmd{d.hub}
	for _, tl := range d.tills {
		cmds = append([]*exec.Cmd{tl.cmd}, cmds...)
	}
	for _, c := range cmds {
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
	RulesVersion          int64   `json:"rules_version"`
	Backlog               int64   `json:"backlog"`
	OldestUnsyncedSeconds float64 `json:"oldest_unsynced_seconds"`
	Scanner               struct {
		Connected bool `json:"connected"`
	} `json:"scanner"`
}

func (d *demo) health(tl *till) (health, error) {
	var h health
	resp, err := d.http.Get("http://" + tl.pos + "/v1/health")
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

func (d *demo) waitHealth(tl *till, what string, timeout time.Duration, cond func(health) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		h, err := d.health(tl)
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
	resp, err := d.http.Get(fmt.Sprintf("http://%s/v1/scans?after=%d&wait=5s", d.tills[pharmacy].pos, d.scanSeq))
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

func (d *demo) post(tl *till, path string, body map[string]any, idemKey string) (map[string]any, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+tl.pos+path, bytes.NewReader(b))
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

func (d *demo) earn(tl *till, member string, amount int64, receipt, idemKey string, lines []map[string]any, what string) (map[string]any, error) {
	body := map[string]any{"member": member, "amount": amount, "currency": "EUR", "receipt": receipt}
	if lines != nil {
		body["lines"] = lines
	}
	r, err := d.post(tl, "/v1/earn", body, idemKey)
	if err != nil {
		return nil, err
	}
	pts := int64(r["points"].(float64))
	d.expected[member] += pts
	d.say("%-8s earn    %-6s EUR %7.2f -> %s, %d points (rules v%v, tx %v)", tl.name, member, float64(amount)/100, r["status"], pts, r["rules_version"], r["tx_id"])
	if what != "" {
		d.say("         (%s)", what)
	}
	seen := d.earnedAt[member]
	if seen == nil {
		seen = map[string]bool{}
		d.earnedAt[member] = seen
	}
	if tl.partner == cafe && !seen[cafe] && len(seen) > 0 {
		d.expected[member] += cafeWelcome
		d.say("         + %d cross-brand welcome points, added by the hub: %s is new to Bean Bar (a till cannot know that)", cafeWelcome, member)
	}
	seen[tl.partner] = true
	return r, nil
}

func (d *demo) burn(tl *till, member string, points int64, receipt string) (map[string]any, error) {
	r, err := d.post(tl, "/v1/burn", map[string]any{"member": member, "points": points, "receipt": receipt}, receipt)
	if err != nil {
		return nil, err
	}
	line := fmt.Sprintf("%-8s burn    %-6s %d points -> %s", tl.name, member, points, r["status"])
	if r["status"] == "approved" {
		d.expected[member] -= points
		line += fmt.Sprintf(", balance now %v", r["balance"])
	} else {
		line += fmt.Sprintf(" (%v)", r["code"])
	}
	d.say("%s", line)
	return r, nil
}

func (d *demo) reverse(tl *till, original, receipt string) (map[string]any, error) {
	r, err := d.post(tl, "/v1/reverse", map[string]any{"original": original, "receipt": receipt}, receipt)
	if err != nil {
		return nil, err
	}
	pts := int64(r["points"].(float64))
	d.expected[r["member"].(string)] -= pts
	d.say("%-8s reverse %-6s %d points of %s (a return) -> %s", tl.name, r["member"], pts, original, r["status"])
	return r, nil
}

func (d *demo) report() error {
	members := make([]string, 0, len(d.expected))
	for m := range d.expected {
		members = append(members, m)
	}
	sort.Strings(members)
	fmt.Fprintf(d.out, "    %-8s %12s %12s\n", "member", "hub ledger", "tills said")
	bad := 0
	for _, m := range members {
		var b struct {
			Points int64 `json:"points"`
		}
		resp, err := d.hubGet("/v1/members/" + m + "/balance")
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
	if resp, err := d.hubGet("/v1/stores"); err == nil {
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		for _, s := range st.Stores {
			d.say("store %s in sync: %v", s.Store, s.InSync)
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d member balance(s) differ between the hub and the tills; logs are in %s", bad, d.dir)
	}
	d.say("every transaction the tills accepted is in the hub's ledger exactly once")
	return nil
}

// hubGet GETs a hub API path with the operator token.
func (d *demo) hubGet(path string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+d.hubHTTP+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.hubToken)
	return d.http.Do(req)
}

// getJSON GETs a hub API path into v.
func (d *demo) getJSON(path string, v any) error {
	resp, err := d.hubGet(path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, bytes.TrimSpace(b))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// showCoalition lists the partners and stores the seed registered.
func (d *demo) showCoalition() error {
	var c struct {
		Name       string `json:"name"`
		Currency   string `json:"currency"`
		PointValue string `json:"point_value"`
	}
	if err := d.getJSON("/v1/coalition", &c); err != nil {
		return err
	}
	var ps struct {
		Partners []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"partners"`
	}
	if err := d.getJSON("/v1/partners", &ps); err != nil {
		return err
	}
	d.say("coalition %q: one point is worth %s %s", c.Name, c.PointValue, c.Currency)
	for _, p := range ps.Partners {
		d.say("  partner %-11s %s", p.ID, p.Name)
	}
	return nil
}

// settle prints today's settlement and the ledger's verify result.
func (d *demo) settle() error {
	today := time.Now().UTC()
	from, to := today.Format(time.DateOnly), today.AddDate(0, 0, 1).Format(time.DateOnly)
	var s struct {
		Currency string `json:"currency"`
		Lines    []struct {
			Partner       string `json:"partner"`
			Issued        int64  `json:"issued"`
			Redeemed      int64  `json:"redeemed"`
			IssuedValue   int64  `json:"issued_value"`
			RedeemedValue int64  `json:"redeemed_value"`
			Net           int64  `json:"net"`
		} `json:"lines"`
		Total struct {
			Issued, Redeemed, Net int64
		} `json:"total"`
	}
	if err := d.getJSON("/v1/settlement?from="+from+"&to="+to, &s); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "    %-11s %8s %9s %12s\n", "partner", "issued", "redeemed", "net "+s.Currency)
	for _, l := range s.Lines {
		fmt.Fprintf(d.out, "    %-11s %8d %9d %12s\n", l.Partner, l.Issued, l.Redeemed, money(l.Net))
	}
	fmt.Fprintf(d.out, "    %-11s %8d %9d %12s\n", "TOTAL", s.Total.Issued, s.Total.Redeemed, money(s.Total.Net))
	d.say("(net > 0: the partner owes the coalition for points it issued; < 0: the coalition owes it for points redeemed there)")
	var v struct {
		OK        bool   `json:"ok"`
		Entries   int    `json:"entries"`
		ChainHead string `json:"chain_head"`
	}
	if err := d.getJSON("/v1/verify", &v); err != nil {
		return err
	}
	if !v.OK {
		return fmt.Errorf("the ledger does not verify; run tillsync-hub verify --data-dir %s for the details", filepath.Join(d.dir, "hub"))
	}
	head := v.ChainHead
	if len(head) > 16 {
		head = head[:16]
	}
	d.say("verify: %d journal entries replayed, hash chain intact (head %s…), every balance, lot and settlement total agrees", v.Entries, head)
	fmt.Fprintln(d.out, "\nEvery transaction the tills accepted is in the hub's ledger exactly once, and the partners' books balance.")
	return nil
}

// money formats minor units of a two-decimal currency.
func money(v int64) string {
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
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
