package protocol_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/tillsync/tillsync/protocol"
	"github.com/tillsync/tillsync/protocol/fuzzlimit"
)

func validStatus() protocol.TerminalStatus {
	yes, off := true, int64(-120)
	return protocol.TerminalStatus{
		Version: protocol.UnsealedVersion, Store: "store-042", Terminal: "till.3",
		Session: 7, Online: true, AgentVersion: "1.5.0", Backlog: 3,
		OldestUnsynced: time.Date(2026, 11, 23, 9, 59, 0, 0, time.UTC), OldestUnsyncedSeconds: 65,
		ScannerConnected: &yes, LastScan: time.Date(2026, 11, 23, 9, 58, 0, 0, time.UTC),
		ClockOffsetMS: &off, OfflinePoints: 500, OfflineBurns: 2,
		SentAt: time.Date(2026, 11, 23, 10, 0, 5, 0, time.UTC),
	}
}

func TestTerminalStatusRoundTrip(t *testing.T) {
	s := validStatus()
	enc, err := protocol.Encode(&s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := protocol.DecodeTerminalStatus(enc)
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, enc)
	}
	if !reflect.DeepEqual(*got, s) {
		t.Fatalf("round trip: %+v\nwant %+v", *got, s)
	}
}

func TestTerminalStatusValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*protocol.TerminalStatus)
		code  protocol.Code
		field string
	}{
		{"no session", func(s *protocol.TerminalStatus) { s.Session = 0 }, protocol.CodeMalformed, "session"},
		{"bad terminal", func(s *protocol.TerminalStatus) { s.Terminal = "a/b" }, protocol.CodeInvalidID, "terminal"},
		{"no store", func(s *protocol.TerminalStatus) { s.Store = "" }, protocol.CodeMissingField, "store"},
		{"version", func(s *protocol.TerminalStatus) { s.Version = protocol.Version + 1 }, protocol.CodeUnsupported, "version"},
		{"agent version control", func(s *protocol.TerminalStatus) { s.AgentVersion = "1.0\n" }, protocol.CodeMalformed, "agent_version"},
		{"negative backlog", func(s *protocol.TerminalStatus) { s.Backlog = -1 }, protocol.CodeMalformed, ""},
		{"no sent_at", func(s *protocol.TerminalStatus) { s.SentAt = time.Time{} }, protocol.CodeMissingField, "sent_at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := validStatus()
			tc.edit(&s)
			err := s.Validate()
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != tc.code || pe.Field != tc.field {
				t.Fatalf("got %v, want %s on %q", err, tc.code, tc.field)
			}
		})
	}
}

func TestClockOffset(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	// Sent at 10:00:00.000, answered at .200 by the till's clock; the hub
	// read 09:59:59.600 meanwhile: the till is 500ms ahead.
	got := protocol.ClockOffset(t0, t0.Add(200*time.Millisecond), t0.Add(-400*time.Millisecond))
	if got != 500*time.Millisecond {
		t.Fatalf("offset %v, want 500ms", got)
	}
}

func FuzzDecodeTerminalStatus(f *testing.F) {
	s := validStatus()
	enc, _ := protocol.Encode(&s)
	f.Add(enc)
	f.Add([]byte(`{"version":2,"store":"s","terminal":"t","session":1,"online":false,"sent_at":"2026-11-23T10:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzlimit.Check(t)
		s, err := protocol.DecodeTerminalStatus(data)
		if err != nil {
			if s != nil {
				t.Fatalf("returned a status with error %v", err)
			}
			return
		}
		enc, err := protocol.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := protocol.DecodeTerminalStatus(enc); err != nil {
			t.Fatalf("re-encoded status refused: %v\n%s", err, enc)
		}
	})
}
