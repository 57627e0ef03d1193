//go:build unix

package e2e

import (
	"net/http"
	"testing"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/posapi"
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
