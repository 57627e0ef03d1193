package ingest_test

import (
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ingest"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/protocol"
)

func status(store, terminal string, session uint64, online bool) *protocol.TerminalStatus {
	return &protocol.TerminalStatus{Version: protocol.UnsealedVersion, Store: store, Terminal: terminal,
		Session: session, Online: online, AgentVersion: "1.0.0", SentAt: ledgertest.T0.Add(time.Duration(session) * time.Second)}
}

func sealedStatus(t *testing.T, key []byte, topic string, s *protocol.TerminalStatus) []byte {
	t.Helper()
	s.Version = protocol.Version
	return sealed(t, key, topic, s)
}

// TestStatusLateWill: the will of an old session arriving after the new
// session's online status leaves the terminal online, and is answered with
// the newest status to put back retained; the will of the current session
// marks it offline.
func TestStatusLateWill(t *testing.T) {
	f := newFixture(t, ingest.Options{}, nil)
	tp := topic(t, "s1", "t1", protocol.ChannelStatus)
	if _, ok := f.in.Status("s1", "t1"); ok {
		t.Fatal("a status before any arrived")
	}
	oldOnline := encode(t, status("s1", "t1", 4, true))
	newOnline := encode(t, status("s1", "t1", 5, true))
	oldWill := encode(t, status("s1", "t1", 4, false))
	for _, p := range [][]byte{oldOnline, newOnline} {
		if r := f.in.HandleStatus(tp, p); r != nil {
			t.Fatalf("restore %s for a newer status", r)
		}
	}
	if r := f.in.HandleStatus(tp, oldWill); string(r) != string(newOnline) {
		t.Fatalf("late will: restore %q, want the newest status", r)
	}
	s, ok := f.in.Status("s1", "t1")
	if !ok || !s.Online || s.Session != 5 || s.AgentVersion != "1.0.0" || !s.ReceivedAt.Equal(ledgertest.T0) {
		t.Fatalf("after a late will: %+v, %v; want session 5 online", s, ok)
	}
	// The hub's own restore comes back to it: same session, taken, no loop.
	if r := f.in.HandleStatus(tp, newOnline); r != nil {
		t.Fatal("the restored status asked for another restore")
	}
	if r := f.in.HandleStatus(tp, encode(t, status("s1", "t1", 5, false))); r != nil {
		t.Fatal("the current session's will refused")
	}
	if s, _ := f.in.Status("s1", "t1"); s.Online || s.Session != 5 {
		t.Fatalf("after its own will: %+v, want offline", s)
	}
	// The session's online status put back after its will (the hub's
	// restore racing the will) is stale too: the will is put back.
	will5 := encode(t, status("s1", "t1", 5, false))
	if r := f.in.HandleStatus(tp, newOnline); string(r) != string(will5) {
		t.Fatalf("online after the same session's will: restore %q, want the will", r)
	}
	if s, _ := f.in.Status("s1", "t1"); s.Online {
		t.Fatal("online again after the session's will")
	}
	// The next session is online.
	f.in.HandleStatus(tp, encode(t, status("s1", "t1", 6, true)))
	if s, _ := f.in.Status("s1", "t1"); !s.Online || s.Session != 6 {
		t.Fatalf("session 6: %+v", s)
	}
	if st := f.in.Stats(); st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestStatusRefused: a status naming another terminal than its topic, a
// malformed one, and one not sealed with the terminal's key (or, with an
// external broker, not sealed at all) change nothing.
func TestStatusRefused(t *testing.T) {
	f := newFixture(t, ingest.Options{RequireMAC: true}, nil)
	key := enroll(t, f.store, "s1", "t1")
	other := enroll(t, f.store, "s1", "t2")
	tp := topic(t, "s1", "t1", protocol.ChannelStatus)
	f.in.HandleStatus(tp, sealedStatus(t, key, tp, status("s1", "t1", 3, true)))
	if s, ok := f.in.Status("s1", "t1"); !ok || !s.Online {
		t.Fatalf("sealed status not taken: %+v %v", s, ok)
	}
	for name, p := range map[string][]byte{
		"unsealed":               encode(t, status("s1", "t1", 9, false)),
		"sealed with t2's key":   sealedStatus(t, other, tp, status("s1", "t1", 9, false)),
		"for t2 on t1's topic":   sealedStatus(t, other, tp, status("s1", "t2", 9, false)),
		"sealed for t2's topic":  sealedStatus(t, key, topic(t, "s1", "t2", protocol.ChannelStatus), status("s1", "t1", 9, false)),
		"malformed":              []byte(`{"version":3,"store":"s1"`),
		"an ack on status topic": encode(t, &protocol.AckBatch{Version: 2}),
	} {
		f.in.HandleStatus(tp, p)
		if s, _ := f.in.Status("s1", "t1"); !s.Online || s.Session != 3 {
			t.Fatalf("%s: status now %+v", name, s)
		}
	}
	if st := f.in.Stats(); st.Refused != 6 || st.MACRefused != 3 {
		t.Fatalf("stats %+v, want 6 refused, 3 for the MAC", st)
	}
	// An empty payload (a cleared retained message) is not a status.
	f.in.HandleStatus(tp, nil)
	if st := f.in.Stats(); st.Refused != 6 {
		t.Fatalf("an empty payload refused: %+v", st)
	}
	// A sealed status of a terminal this hub never enrolled (another
	// hub's, retained at a shared broker) is dropped: not shown, not
	// counted refused.
	strange := topic(t, "elsewhere", "t1", protocol.ChannelStatus)
	f.in.HandleStatus(strange, sealedStatus(t, key, strange, status("elsewhere", "t1", 1, true)))
	if _, ok := f.in.Status("elsewhere", "t1"); ok {
		t.Error("another hub's till's status taken")
	}
	if st := f.in.Stats(); st.Refused != 6 {
		t.Fatalf("another hub's till's status counted refused: %+v", st)
	}
}

// TestStatusRestoreEcho: the newest status the hub handed back to be put
// back retained, coming back after a newer status of the same session,
// does not replace it.
func TestStatusRestoreEcho(t *testing.T) {
	f := newFixture(t, ingest.Options{}, nil)
	tp := topic(t, "s1", "t1", protocol.ChannelStatus)
	v1 := encode(t, status("s1", "t1", 5, true))
	s2 := status("s1", "t1", 5, true)
	s2.Backlog = 7
	v2 := encode(t, s2)
	f.in.HandleStatus(tp, v1)
	if r := f.in.HandleStatus(tp, encode(t, status("s1", "t1", 4, false))); string(r) != string(v1) {
		t.Fatalf("restore %q", r)
	}
	f.in.HandleStatus(tp, v2)
	if r := f.in.HandleStatus(tp, v1); r != nil {
		t.Fatalf("the echo asked for a restore %q", r)
	}
	if s, _ := f.in.Status("s1", "t1"); s.Backlog != 7 || !s.Online {
		t.Fatalf("after the echo: %+v, want the newer status", s)
	}
	// Once echoed, the same bytes are an ordinary status again.
	f.in.HandleStatus(tp, v1)
	if s, _ := f.in.Status("s1", "t1"); s.Backlog != 0 {
		t.Fatalf("%+v", s)
	}
}
