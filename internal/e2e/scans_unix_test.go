//go:build unix

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/agent/scanner"
	"github.com/tillsync/tillsync/internal/testkit"
)

type scansAnswer struct {
	Scans []posapi.ScanEvent `json:"scans"`
}

// TestScansFromSerialScanner: a member card read by a serial scanner (a
// pseudo-terminal) reaches the POS through the long-poll on /v1/scans; a
// long-poll with nothing new ends with an empty list.
func TestScansFromSerialScanner(t *testing.T) {
	pty := testkit.OpenPTY(t)
	store := randomID("scan-")
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: "tcp://" + testkit.FreePort(t), Store: store, ScannerPort: pty.Name})
	testkit.WaitFor(t, waitLong, "the scanner to connect", func() bool { return a.health(t).Scanner.Connected })
	if hl := a.health(t); hl.Scanner.Port != pty.Name || hl.Scanner.LastError != "" || !hl.Scanner.LastScan.IsZero() {
		t.Errorf("scanner health before any scan: %+v", hl.Scanner)
	}

	// Nothing scanned yet: a short poll comes back empty.
	var got scansAnswer
	getJSON(t, a.pos+"/v1/scans?after=0&wait=50ms", &got)
	if got.Scans == nil || len(got.Scans) != 0 {
		t.Fatalf("scans before any scan: %+v, want an empty list", got.Scans)
	}

	// A long-poll from the start, likely already waiting when the card is read.
	polled := make(chan scansAnswer, 1)
	go func() {
		var s scansAnswer
		resp, err := http.Get(a.pos + "/v1/scans?after=0&wait=5s")
		if err == nil {
			defer resp.Body.Close()
			err = decodeJSON(resp, &s)
		}
		if err != nil {
			t.Errorf("long-poll: %v", err)
		}
		polled <- s
	}()
	if _, err := pty.Master.Write([]byte("]C0M1001\r\n")); err != nil {
		t.Fatal(err)
	}
	got = <-polled
	if len(got.Scans) != 1 {
		t.Fatalf("long-poll after one scan: %+v, want one scan", got.Scans)
	}
	s := got.Scans[0]
	if s.Member != "M1001" || s.Symbology != "C0" || s.Seq == 0 || s.At.IsZero() {
		t.Errorf("scan: %+v, want member M1001, symbology C0", s)
	}
	if hl := a.health(t); !hl.Scanner.LastScan.Equal(s.At) {
		t.Errorf("health last_scan %s, want %s", hl.Scanner.LastScan, s.At)
	}

	// The same poll again returns the scan at once; after it, nothing new.
	getJSON(t, a.pos+"/v1/scans?after=0&wait=5s", &got)
	if len(got.Scans) != 1 || got.Scans[0].Seq != s.Seq {
		t.Errorf("repeat poll from 0: %+v", got.Scans)
	}
	var empty scansAnswer
	getJSON(t, a.pos+"/v1/scans?after="+seqStr(s.Seq)+"&wait=200ms", &empty)
	if empty.Scans == nil || len(empty.Scans) != 0 {
		t.Errorf("long-poll after the latest scan: %+v, want an empty list", empty.Scans)
	}

	// A code that is not a member id is not offered to the POS; the next card is.
	if _, err := pty.Master.Write([]byte("]Q1https://x.example/m/1\r\n]Q1M1002\r\n")); err != nil {
		t.Fatal(err)
	}
	getJSON(t, a.pos+"/v1/scans?after="+seqStr(s.Seq)+"&wait=5s", &got)
	if len(got.Scans) != 1 || got.Scans[0].Member != "M1002" || got.Scans[0].Symbology != "Q1" || got.Scans[0].Seq != s.Seq+1 {
		t.Errorf("scans after a URL QR code and a card: %+v, want only M1002", got.Scans)
	}
}

// TestScanStream: scans reach a POS listening on /v1/scans/stream as
// server-sent events, and a POS that reconnects with Last-Event-ID gets
// what it missed, and nothing twice.
func TestScanStream(t *testing.T) {
	pty := testkit.OpenPTY(t)
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: "tcp://" + testkit.FreePort(t), Store: randomID("sse-"), ScannerPort: pty.Name})
	testkit.WaitFor(t, waitLong, "the scanner to connect", func() bool { return a.health(t).Scanner.Connected })

	open := func(lastID string) (*http.Response, *bufio.Reader) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, a.pos+"/v1/scans/stream", nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("stream: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return resp, bufio.NewReader(resp.Body)
	}
	// next reads the next scan event: its id and data.
	next := func(r *bufio.Reader) (string, posapi.ScanEvent) {
		t.Helper()
		var id, event string
		var ev posapi.ScanEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("stream read: %v", err)
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
					t.Fatalf("event data %q: %v", line, err)
				}
			case line == "" && event == "scan":
				return id, ev
			}
		}
	}

	resp, r := open("")
	if _, err := pty.Master.Write([]byte("]C0M2001\r\n")); err != nil {
		t.Fatal(err)
	}
	id, ev := next(r)
	if ev.Member != "M2001" || ev.Symbology != "C0" || id != seqStr(ev.Seq) {
		t.Fatalf("first event: id %s %+v", id, ev)
	}
	resp.Body.Close()

	// Two cards while the POS is away; it reconnects from the last id it saw.
	if _, err := pty.Master.Write([]byte("]C0M2002\r\n]Q1M2003\r\n")); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, waitLong, "both scans", func() bool {
		var got scansAnswer
		getJSON(t, a.pos+"/v1/scans?after="+id, &got)
		return len(got.Scans) == 2
	})
	resp, r = open(id)
	defer resp.Body.Close()
	_, e2 := next(r)
	_, e3 := next(r)
	if e2.Member != "M2002" || e3.Member != "M2003" || e2.Seq != ev.Seq+1 || e3.Seq != ev.Seq+2 {
		t.Fatalf("after reconnecting: %+v, %+v; want M2002 then M2003", e2, e3)
	}
}

// TestPaymentCardNeverKept: a payment card scanned by mistake is refused
// and its number is nowhere — not offered to the POS, not in the log (at
// DEBUG), not in the data dir — while member cards with the coalition's
// check digit go through and one with a wrong check digit is refused.
func TestPaymentCardNeverKept(t *testing.T) {
	pty := testkit.OpenPTY(t)
	var logs testkit.Buffer
	dir := t.TempDir()
	a := startTill(t, agent.Options{DataDir: dir, Broker: "tcp://" + testkit.FreePort(t), Store: randomID("pan-"), ScannerPort: pty.Name,
		MemberCheck: scanner.CheckLuhn, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	testkit.WaitFor(t, waitLong, "the scanner to connect", func() bool { return a.health(t).Scanner.Connected })
	const pan = "4111111111111111" // a test Visa number: Luhn-valid, card prefix
	frames := "]E0" + pan + "\r\n" + "4111 1111 1111 1111\r\n" + "79927398710\r\n" + "]C079927398713\r\n"
	if _, err := pty.Master.Write([]byte(frames)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, waitLong, "four scans read", func() bool { return a.health(t).Scanner.Scans == 4 })
	var got scansAnswer
	getJSON(t, a.pos+"/v1/scans?after=0&wait=1s", &got)
	if len(got.Scans) != 1 || got.Scans[0].Member != "79927398713" {
		t.Fatalf("scans offered to the POS: %+v, want only the member card 79927398713", got.Scans)
	}
	if h := a.health(t); h.Scanner.Refused != 3 {
		t.Errorf("scanner health: %+v, want 3 refused", h.Scanner)
	}
	a.stop(t)
	for _, needle := range []string{pan, "4111 1111", "411111", "1111111111"} {
		if strings.Contains(logs.String(), needle) {
			t.Errorf("the log contains %q:\n%s", needle, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "payment card") {
		t.Errorf("the log does not say a payment card was refused:\n%s", logs.String())
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(pan)) || bytes.Contains(data, []byte("4111 1111")) {
			t.Errorf("%s contains the card number", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
