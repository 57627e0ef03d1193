//go:build unix

package agent_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

var (
	strangerKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{12}, ed25519.SeedSize))
	tokenNow    = time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC)
)

// keysConfig is rulesConfig with the coalition's member token key.
func keysConfig(pub time.Time) protocol.Config {
	c := rulesConfig(pub)
	c.MemberTokenKeys = []string{protocol.EncodeTokenKey(coalitionKey.Public().(ed25519.PublicKey))}
	return c
}

func token(t *testing.T, key ed25519.PrivateKey, member string, expires time.Time) string {
	t.Helper()
	tok, err := protocol.MintMemberToken(key, member, expires, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// scanner is a till's barcode scanner: a pseudo-terminal the agent reads,
// and the scans the POS has collected from it so far.
type scanner struct {
	pty  *testkit.PTY
	last uint64
}

// withScanner returns an option setter that gives the till a pty scanner.
func withScanner(t *testing.T, clk clock.Clock) (*scanner, func(*agent.Options)) {
	sc := &scanner{pty: testkit.OpenPTY(t)}
	return sc, func(o *agent.Options) { o.ScannerPort, o.Clock = sc.pty.Name, clk }
}

// scan sends data through the scanner as a QR code (AIM ]Q1) and returns
// the scan event the POS gets for it.
func (sc *scanner) scan(t *testing.T, p *till, data string) posapi.ScanEvent {
	t.Helper()
	if _, err := sc.pty.Master.Write([]byte("]Q1" + data + "\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(p.pos + "/v1/scans?after=" + strconv.FormatUint(sc.last, 10) + "&wait=10s")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Scans []posapi.ScanEvent `json:"scans"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || len(got.Scans) != 1 {
		t.Fatalf("scans after %d: %+v, %v; want one", sc.last, got.Scans, err)
	}
	sc.last = got.Scans[0].Seq
	return got.Scans[0]
}

// sightings collects what the till reports on its scan topic.
type sightings struct {
	mu  sync.Mutex
	got []protocol.Sighting
}

func watchSightings(t *testing.T, h *fakeHub) *sightings {
	t.Helper()
	s := &sightings{}
	topic, _ := protocol.TerminalTopic(store, terminal, protocol.ChannelScan)
	tok := h.c.Subscribe(topic, 0, func(_ mqtt.Client, m mqtt.Message) {
		sg, err := protocol.DecodeSighting(m.Payload())
		if err != nil {
			t.Errorf("the till sent a bad sighting: %v", err)
			return
		}
		s.mu.Lock()
		s.got = append(s.got, *sg)
		s.mu.Unlock()
	})
	if !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return s
}

func (s *sightings) list() []protocol.Sighting {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]protocol.Sighting(nil), s.got...)
}

func checkRefused(t *testing.T, ev posapi.ScanEvent, code protocol.Code, says string) {
	t.Helper()
	if ev.Error == nil || ev.Error.Code != code || !strings.Contains(ev.Error.Message, says) || ev.Member != "" || ev.Source != posapi.SourceToken {
		t.Fatalf("scan event %+v (error %+v): want refused %s saying %q, no member", ev, ev.Error, code, says)
	}
}

// TestMemberTokenScans: a member QR token verified offline with the key
// from the hub's config gives the POS its member and the hub a sighting;
// expired, forged, malformed and replayed ones are refused, each with its
// code and a message for the cashier; a card still reads as a card.
func TestMemberTokenScans(t *testing.T) {
	b := testkit.StartBroker(t)
	hub := startHub(t, b.URL)
	seen := watchSightings(t, hub)
	hub.publishConfig(keysConfig(tokenNow.Add(-time.Hour)))
	clk := clock.NewFake(tokenNow)
	sc, set := withScanner(t, clk)
	p := startTill(t, t.TempDir(), b.URL, set)
	testkit.WaitFor(t, waitLong, "the config and the scanner", func() bool {
		h := p.health(t)
		return h.MemberTokenKeys == 1 && h.Scanner.Connected && h.HubConnected
	})

	good := token(t, coalitionKey, "M1001", tokenNow.Add(2*time.Minute))
	ev := sc.scan(t, p, good)
	if ev.Member != "M1001" || ev.Source != posapi.SourceToken || ev.Error != nil || ev.Symbology != "Q1" ||
		!ev.ExpiresAt.Equal(tokenNow.Add(2*time.Minute)) || !ev.At.Equal(tokenNow) {
		t.Fatalf("good token: %+v", ev)
	}
	testkit.WaitFor(t, waitLong, "the sighting at the hub", func() bool { return len(seen.list()) == 1 })
	if sg := seen.list()[0]; sg.Token != good || sg.Store != store || sg.Terminal != terminal || !sg.At.Equal(tokenNow) {
		t.Errorf("sighting %+v", sg)
	}

	checkRefused(t, sc.scan(t, p, good), protocol.CodeTokenReplayed, "already used")
	// Within the leeway (1 minute by default) the till's clock may be ahead.
	clk.Set(tokenNow.Add(2*time.Minute + 30*time.Second))
	late := token(t, coalitionKey, "M1002", tokenNow.Add(2*time.Minute))
	if ev := sc.scan(t, p, late); ev.Member != "M1002" || ev.Error != nil {
		t.Fatalf("a token 30s past its expiry, within the leeway: %+v", ev)
	}
	clk.Set(tokenNow)
	checkRefused(t, sc.scan(t, p, token(t, coalitionKey, "M1001", tokenNow.Add(-2*time.Minute))), protocol.CodeTokenExpired, "expired")
	checkRefused(t, sc.scan(t, p, token(t, strangerKey, "M1001", tokenNow.Add(time.Minute))), protocol.CodeTokenForged, "not issued by the coalition")
	// One token's payload with another's signature: the member id changed.
	mine, theirs := token(t, coalitionKey, "M1001", tokenNow.Add(time.Minute)), token(t, coalitionKey, "M9999", tokenNow.Add(time.Minute))
	forged := mine[:strings.LastIndexByte(mine, '.')] + theirs[strings.LastIndexByte(theirs, '.'):]
	checkRefused(t, sc.scan(t, p, forged), protocol.CodeTokenForged, "not issued")
	checkRefused(t, sc.scan(t, p, protocol.TokenPrefix+strings.Repeat("A", 100)), protocol.CodeTokenMalformed, "not readable")
	checkRefused(t, sc.scan(t, p, token(t, coalitionKey, "M1001", tokenNow.Add(time.Hour))), protocol.CodeTokenLifetime, "clock")

	// A card is a card.
	if ev := sc.scan(t, p, "M2002"); ev.Member != "M2002" || ev.Source != posapi.SourceCard || ev.Error != nil {
		t.Fatalf("card: %+v", ev)
	}
	// Only the accepted tokens were reported to the hub.
	testkit.WaitFor(t, waitLong, "the second sighting", func() bool { return len(seen.list()) == 2 })
	if got := seen.list(); got[1].Token != late {
		t.Errorf("sightings %+v, want the two accepted tokens", got)
	}
}

// TestMemberTokenReplayAfterRestart: the nonces a till accepted are in its
// outbox, so a token scanned before a restart is still refused after it —
// offline, with the keys from the stored config.
func TestMemberTokenReplayAfterRestart(t *testing.T) {
	dir := t.TempDir()
	b := testkit.StartBroker(t)
	hub := startHub(t, b.URL)
	hub.publishConfig(keysConfig(tokenNow.Add(-time.Hour)))
	clk := clock.NewFake(tokenNow)
	sc, set := withScanner(t, clk)
	p := startTill(t, dir, b.URL, set)
	testkit.WaitFor(t, waitLong, "the config", func() bool { return p.health(t).MemberTokenKeys == 1 })
	tok := token(t, coalitionKey, "M1001", tokenNow.Add(2*time.Minute))
	if ev := sc.scan(t, p, tok); ev.Member != "M1001" {
		t.Fatalf("first scan: %+v", ev)
	}
	p.stop(t)
	b.Close()

	sc.last = 0 // a new agent numbers its scans from 1 again
	p = startTill(t, dir, b.URL, set)
	testkit.WaitFor(t, waitLong, "the scanner", func() bool { return p.health(t).Scanner.Connected })
	if h := p.health(t); h.HubConnected || h.MemberTokenKeys != 1 {
		t.Fatalf("after the restart: hub connected %v, %d keys; want offline with the stored key", h.HubConnected, h.MemberTokenKeys)
	}
	checkRefused(t, sc.scan(t, p, tok), protocol.CodeTokenReplayed, "already used")
	// Another token is fine offline: nothing waits for the hub.
	if ev := sc.scan(t, p, token(t, coalitionKey, "M1001", tokenNow.Add(2*time.Minute))); ev.Member != "M1001" || ev.Error != nil {
		t.Fatalf("a fresh token offline: %+v", ev)
	}
}

// TestMemberTokenWithoutKeys: a till with no config yet, or a config
// without keys (an older hub), refuses tokens as unverifiable — neither
// forged nor a member — and still reads cards.
func TestMemberTokenWithoutKeys(t *testing.T) {
	b := testkit.StartBroker(t)
	hub := startHub(t, b.URL)
	clk := clock.NewFake(tokenNow)
	sc, set := withScanner(t, clk)
	p := startTill(t, t.TempDir(), b.URL, set)
	testkit.WaitFor(t, waitLong, "the scanner", func() bool { return p.health(t).Scanner.Connected })
	tok := token(t, coalitionKey, "M1001", tokenNow.Add(2*time.Minute))
	checkRefused(t, sc.scan(t, p, tok), protocol.CodeTokenUnverifiable, "no keys")

	hub.publishConfig(rulesConfig(tokenNow.Add(-time.Hour)))
	testkit.WaitFor(t, waitLong, "the config", func() bool { return p.health(t).RulesVersion != 0 })
	if n := p.health(t).MemberTokenKeys; n != 0 {
		t.Fatalf("%d keys from a config without any", n)
	}
	checkRefused(t, sc.scan(t, p, tok), protocol.CodeTokenUnverifiable, "no keys")
	if ev := sc.scan(t, p, "M2002"); ev.Member != "M2002" || ev.Source != posapi.SourceCard {
		t.Fatalf("card: %+v", ev)
	}
	// Once the keys arrive the same token is accepted: refusing it as
	// unverifiable did not use it up.
	hub.publishConfig(keysConfig(tokenNow))
	testkit.WaitFor(t, waitLong, "the keys", func() bool { return p.health(t).MemberTokenKeys == 1 })
	if ev := sc.scan(t, p, tok); ev.Member != "M1001" || ev.Error != nil {
		t.Fatalf("after the keys arrived: %+v", ev)
	}
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestTokenLeewayOption(t *testing.T) {
	for _, d := range []time.Duration{-time.Second, protocol.MaxTokenLifetime + time.Second} {
		_, err := agent.New(agent.Options{DataDir: t.TempDir(), Broker: "tcp://127.0.0.1:1", Store: store, Terminal: terminal, Partner: partner,
			POSListener: mustListen(t), TokenLeeway: d})
		if err == nil || !strings.Contains(err.Error(), "token leeway") {
			t.Errorf("TokenLeeway %s: %v", d, err)
		}
	}
}
