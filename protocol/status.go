package protocol

import "time"

// TerminalStatus is what a till says about itself, retained on its
// terminal's status channel: the agent publishes one (Online) when it
// connects, again when something in it changes (at most once a second)
// and every minute, and one with Online false just before it disconnects
// cleanly; its MQTT last will, set before it connects, is one with Online
// false too, which the broker publishes (retained) when the connection
// dies. An enrolled till seals it with its MAC key like everything else
// it sends.
//
// Session orders them: the agent takes a new session number from a
// counter kept in its outbox for every connection attempt, so numbers
// grow across reconnects and restarts. A reader ignores a status whose
// Session is lower than the highest it has seen for the terminal: that is
// the last will (or a late status) of a connection the till has already
// replaced, and must not mark a till offline that is back online.
type TerminalStatus struct {
	// Version is the protocol Version the sender speaks.
	Version int `json:"version"`
	// Store and Terminal name the till; they must match the topic.
	Store string `json:"store"`
	// Terminal is the till within Store.
	Terminal string `json:"terminal"`
	// Session is the connection's number from the till's session counter:
	// 1 or more, higher for every later connection of the till.
	Session uint64 `json:"session"`
	// Online is true while the connection is up; false in the last will
	// and in the status sent before a clean disconnect.
	Online bool `json:"online"`
	// AgentVersion is the tillsync-agent's version; "" when unknown.
	AgentVersion string `json:"agent_version,omitempty"`
	// Backlog is how many transactions wait in the till's outbox for the
	// hub's ack (sent or not).
	Backlog int64 `json:"backlog"`
	// OldestUnsynced is when the oldest of them was created, by the till's
	// clock; zero when the outbox is empty.
	OldestUnsynced time.Time `json:"oldest_unsynced,omitzero"`
	// OldestUnsyncedSeconds is its age in whole seconds at SentAt.
	OldestUnsyncedSeconds int64 `json:"oldest_unsynced_seconds,omitempty"`
	// ScannerConnected says whether the till's barcode scanner is
	// attached; absent when the till has no scanner configured.
	ScannerConnected *bool `json:"scanner_connected,omitempty"`
	// LastScan is the scanner's last read, by the till's clock.
	LastScan time.Time `json:"last_scan,omitzero"`
	// ClockOffsetMS is the till's clock minus the hub's, in milliseconds,
	// as the till last estimated it (from a BalanceReply's as_of and the
	// query's round trip); absent when it has no estimate yet.
	ClockOffsetMS *int64 `json:"clock_offset_ms,omitempty"`
	// OfflinePoints is the points of the burns the till approved offline
	// that the hub has not answered yet: its offline exposure in use.
	OfflinePoints int64 `json:"offline_points"`
	// OfflineBurns is how many such burns there are.
	OfflineBurns int `json:"offline_burns"`
	// OfflineCap is the most points this till may approve offline (its
	// share of the store's cap); 0 when it approves no burns offline.
	OfflineCap int64 `json:"offline_cap,omitempty"`
	// SentAt is the till's clock when it published the status (for a last
	// will: when it connected).
	SentAt time.Time `json:"sent_at"`
	// MAC is set by an enrolled till (see Batch.MAC).
	MAC string `json:"mac,omitempty"`
}

// MaxAgentVersionLen bounds TerminalStatus.AgentVersion.
const MaxAgentVersionLen = 64

// Validate checks a status on its own (not against the topic).
func (s *TerminalStatus) Validate() error {
	if err := checkVersion(s.Version); err != nil {
		return err
	}
	if err := checkID("store", s.Store); err != nil {
		return err
	}
	if err := checkID("terminal", s.Terminal); err != nil {
		return err
	}
	if s.Session == 0 {
		return Errorf(CodeMalformed, "session", "must be 1 or more")
	}
	if len(s.AgentVersion) > MaxAgentVersionLen {
		return Errorf(CodeMalformed, "agent_version", "at most %d characters", MaxAgentVersionLen)
	}
	for _, r := range s.AgentVersion {
		if r < 0x20 || r == 0x7f {
			return Errorf(CodeMalformed, "agent_version", "control character")
		}
	}
	if s.Backlog < 0 || s.OldestUnsyncedSeconds < 0 || s.OfflinePoints < 0 || s.OfflineBurns < 0 {
		return Errorf(CodeMalformed, "", "counts must not be negative")
	}
	if s.SentAt.IsZero() {
		return Errorf(CodeMissingField, "sent_at", "is required")
	}
	return nil
}

// DecodeTerminalStatus parses and validates a TerminalStatus. Input over
// MaxSmallMessageBytes is refused before it is parsed.
func DecodeTerminalStatus(data []byte) (*TerminalStatus, error) {
	var s TerminalStatus
	if err := decode(data, MaxSmallMessageBytes, &s); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// ClockOffset estimates the local clock minus the remote one from a
// request sent at sent and answered at received (both local) with the
// remote clock's reading remote, taken while it answered: the remote
// reading is assumed to be from the middle of the round trip, so the
// error is at most half of it.
func ClockOffset(sent, received, remote time.Time) time.Duration {
	mid := sent.Add(received.Sub(sent) / 2)
	return mid.Sub(remote)
}
