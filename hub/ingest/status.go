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
	topic   string
}

// HandleStatus takes a message from a terminal's status topic: a status
// the till published or its last will, which the broker published for
// it. It never blocks. The status must name the topic's terminal and be
// authenticated like any message from the till; an empty payload (a
// cleared retained message) is ignored.
//
// A status whose session is older than the newest seen for the terminal
// is ignored: it is the will (or a late status) of a connection the till
// has replaced, and the till is not offline. restore is then the newest
// status's payload, for the caller to publish again, retained, on topic:
// the broker has replaced the retained status with the stale one, and a
// hub subscribing later must not read it. Otherwise restore is nil.
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
	if _, err := in.authenticate(store, terminal, topic, payload, s.MAC); err != nil {
		in.refuseMAC(store, terminal, topic, err)
		return nil
	}
	t := &in.statuses
	k := TerminalKey{store, terminal}
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.m[k]; ok && s.Session < cur.Session {
		in.log.Debug("ignoring a status of an older session", "store", store, "terminal", terminal,
			"session", s.Session, "newest", cur.Session, "online", s.Online)
		return cur.payload
	}
	if t.m == nil {
		t.m = make(map[TerminalKey]storedStatus)
	}
	t.m[k] = storedStatus{TerminalStatus{*s, in.o.Clock.Now()}, bytes.Clone(payload), topic}
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
