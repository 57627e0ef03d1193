//go:build unix

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// scanningTill is a till with a serial scanner (a pseudo-terminal) and the
// POS's cursor over its scans.
type scanningTill struct {
	*till
	pty  *testkit.PTY
	last uint64
}

func startScanningTill(t *testing.T, e *env, store, terminal string) *scanningTill {
	t.Helper()
	pty := testkit.OpenPTY(t)
	p := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), Store: store, Terminal: terminal, ScannerPort: pty.Name})
	return &scanningTill{till: p, pty: pty}
}

// ready waits until the till holds the hub's member token key, reads its
// scanner and is connected (so its sightings reach the hub).
func (s *scanningTill) ready(t *testing.T) {
	t.Helper()
	testkit.WaitFor(t, waitLong, "the till to hold the token key, with its scanner and the hub connected", func() bool {
		h := s.health(t)
		return h.MemberTokenKeys == 1 && h.Scanner.Connected && h.HubConnected
	})
}

// scan reads data as a QR code and returns what the POS is told.
func (s *scanningTill) scan(t *testing.T, data string) posapi.ScanEvent {
	t.Helper()
	if _, err := s.pty.Master.Write([]byte("]Q1" + data + "\r\n")); err != nil {
		t.Fatal(err)
	}
	var got scansAnswer
	getJSON(t, s.pos+"/v1/scans?after="+seqStr(s.last)+"&wait=10s", &got)
	if len(got.Scans) != 1 {
		t.Fatalf("scans after %d: %+v, want one", s.last, got.Scans)
	}
	s.last = got.Scans[0].Seq
	return got.Scans[0]
}

func tokenFlags(t *testing.T, e *env) []ledger.TokenRecord {
	t.Helper()
	var got struct {
		TokenFlags []ledger.TokenRecord `json:"token_flags"`
	}
	hubGet(t, e, "/v1/token-flags", &got)
	return got.TokenFlags
}

// TestMemberTokenAcrossStores: a member app's QR token, minted by the hub
// over HTTP, is scanned at a till; the POS sees the member, the same till
// refuses it a second time; another till of the store may take it; a till
// of another store takes it too (it cannot know), and the hub flags the
// token for an operator.
func TestMemberTokenAcrossStores(t *testing.T) {
	for _, broker := range brokers() {
		t.Run(broker, func(t *testing.T) {
			e := newEnv(t, broker)
			e.httpAddr = testkit.FreePort(t)
			storeA, storeB := e.store("tok-a-"), e.store("tok-b-")
			h := startHubOnce(t, e)
			res := hubRequest(t, e, "POST", "/v1/members/M1001/token", nil)
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			var minted httpapi.MemberToken
			if res.StatusCode != http.StatusCreated || json.Unmarshal(body, &minted) != nil || minted.Member != "M1001" {
				t.Fatalf("minting a token: %d %s", res.StatusCode, body)
			}

			a1 := startScanningTill(t, e, storeA, "till-1")
			a2 := startScanningTill(t, e, storeA, "till-2")
			b1 := startScanningTill(t, e, storeB, "till-1")
			for _, s := range []*scanningTill{a1, a2, b1} {
				s.ready(t)
			}

			ev := a1.scan(t, minted.Token)
			if ev.Member != "M1001" || ev.Source != posapi.SourceToken || ev.Error != nil || !ev.ExpiresAt.Equal(minted.ExpiresAt) {
				t.Fatalf("the POS at %s/till-1 got %+v, want member M1001 from a token", storeA, ev)
			}
			if ev := a1.scan(t, minted.Token); ev.Error == nil || ev.Error.Code != protocol.CodeTokenReplayed || ev.Member != "" {
				t.Fatalf("the same token again at the same till: %+v", ev)
			}
			// Sightings travel on their own (QoS 0, one message each): let
			// the first reach the hub before the next till's.
			testkit.WaitFor(t, waitLong, "the first sighting at the hub", func() bool { return h.h.Stats().Sightings == 1 })
			// The next till of the same store: accepted, recorded, not flagged.
			if ev := a2.scan(t, minted.Token); ev.Member != "M1001" || ev.Error != nil {
				t.Fatalf("at %s/till-2: %+v", storeA, ev)
			}
			testkit.WaitFor(t, waitLong, "two sightings at the hub", func() bool { return h.h.Stats().Sightings == 2 })
			if fs := tokenFlags(t, e); len(fs) != 0 {
				t.Fatalf("flags after two tills of one store: %+v", fs)
			}

			// Another store's till takes it: it has never seen it.
			if ev := b1.scan(t, minted.Token); ev.Member != "M1001" || ev.Error != nil {
				t.Fatalf("at %s/till-1: %+v", storeB, ev)
			}
			var fs []ledger.TokenRecord
			testkit.WaitFor(t, waitLong, "the token to be flagged", func() bool { fs = tokenFlags(t, e); return len(fs) == 1 })
			f := fs[0]
			if f.Member != "M1001" || f.First.Store != storeA || f.First.Terminal != "till-1" || f.Elsewhere == nil ||
				f.Elsewhere.Store != storeB || f.Elsewhere.Terminal != "till-1" || f.Sightings != 3 || !f.ExpiresAt.Equal(minted.ExpiresAt) {
				t.Fatalf("token flag %+v (elsewhere %+v)", f, f.Elsewhere)
			}
			// The ledger commits the flag before the counter moves.
			testkit.WaitFor(t, waitLong, "the flag to be counted", func() bool { return h.h.Stats().TokenFlags == 1 })
			if st := h.h.Stats(); st.TokenFlags != 1 || st.Refused != 0 {
				t.Errorf("hub stats %+v", st)
			}
			h.verify(t) // sightings move no points
		})
	}
}
