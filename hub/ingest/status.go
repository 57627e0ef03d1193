package ingest

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

// TerminalStatus is a till's newest status as the hub took it.
type TerminalStatus struct {
	protocol.TerminalStatus
	// ReceivedAt is the hub's clock when it arrived.
	ReceivedAt time.Time
}

// statusTable keeps each terminal's newest status, by session.
type statusTable struct {
	mu sync.Mutex
	m  map[TerminalKey]storedStatus
}

type storedStatus struct {
	TerminalStatus
	payload []byte // as received: sealed, so it can be put back retained as is
	// restoring is the payload last handed back to be put back retained:
	// when it comes back through the broker it is not news, and may be
	// older than a status of the same session that came meanwhile.
	restoring []byte
}

// HandleStatus takes a message from a terminal's status topic: a status
// the till published or its last will, which the broker published for
// it. It never blocks. The status must name the topic's terminal and be
// authenticated like any message from the till; an empty payload (a
// cleared retained message) is ignored.
//
// A status whose session is older than the newest seen for the terminal
// is ignored: it is the will (or a late status) of a connection the till
// has replaced, and the till is not offline. So is an online status of a
// session already said offline (its will, or the till's own last word
// before a clean stop): nothing follows those in a session, so it is a
// stale one put back (by this hub, racing the will). restore is then the
// newest status's payload, for the caller to publish again, retained, on topic:
// the broker has replaced the retained status with the stale one, and a
// hub subscribing later must not read it. Otherwise restore is nil. The
// restored status, when it comes back, is ignored.
func (in *Ingest) HandleStatus(topic string, payload []byte) (restore []byte) {
	if len(payload) == 0 {
		return nil
	}
	store, terminal, ch, err := protocol.ParseTerminalTopic(topic)
	if err != nil || ch != protocol.ChannelStatus {
		in.refuse("bad topic", topic, err)
		return nil
	}
	s, err := protocol.DecodeTerminalStatus(payload)
	if err != nil {
		in.refuse("bad status", topic, err)
		return nil
	}
	if s.Store != store || s.Terminal != terminal {
		in.refuse("status names another terminal than its topic", topic, fmt.Errorf("status from %s/%s", s.Store, s.Terminal))
		return nil
	}
	if s.MAC != "" {
		if auth := in.o.Store.TerminalAuth(store, terminal); auth.MACKey == nil && !auth.Enrolled && !auth.Revoked {
			// Sealed by a terminal this hub never enrolled: another hub's
			// till (an external broker keeps every retained status, a
			// shared one or one whose hub started a new ledger). Nothing
			// to verify it with and nothing to show; a status moves no
			// points, so it is dropped without counting it refused.
			in.log.Debug("ignoring the status of a terminal this hub has not enrolled", "store", store, "terminal", terminal)
			return nil
		}
	}
	if _, err := in.authenticate(store, terminal, topic, payload, s.MAC); err != nil {
		in.refuseMAC(store, terminal, topic, err)
		return nil
	}
	t := &in.statuses
	k := TerminalKey{store, terminal}
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, ok := t.m[k]
	switch {
	case ok && cur.restoring != nil && bytes.Equal(payload, cur.restoring):
		cur.restoring = nil
		t.m[k] = cur
		return nil
	case ok && (s.Session < cur.Session || s.Session == cur.Session && s.Online && !cur.Online):
		in.log.Debug("ignoring a stale status", "store", store, "terminal", terminal,
			"session", s.Session, "newest", cur.Session, "online", s.Online, "newest_online", cur.Online)
		cur.restoring = cur.payload
		t.m[k] = cur
		return cur.payload
	}
	if t.m == nil {
		t.m = make(map[TerminalKey]storedStatus)
	}
	if !ok && len(t.m) >= maxLags {
		// Bounded like the lags: a broker that lets any client id in
		// could otherwise grow the table without end.
		return nil
	}
	t.m[k] = storedStatus{TerminalStatus: TerminalStatus{*s, in.o.Clock.Now()}, payload: bytes.Clone(payload), restoring: cur.restoring}
	return nil
}

// Status returns a terminal's newest status; ok is false when it has
// reported none since the hub started (or, with an external broker, none
// is retained).
func (in *Ingest) Status(store, terminal string) (s TerminalStatus, ok bool) {
	t := &in.statuses
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.m[TerminalKey{store, terminal}]
	return st.TerminalStatus, ok
}
