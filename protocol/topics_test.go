package protocol_test

import (
	"strings"
	"testing"

	"github.com/tillsync/tillsync/protocol"
)

var channels = []protocol.Channel{protocol.ChannelTx, protocol.ChannelAck, protocol.ChannelQuery, protocol.ChannelReply, protocol.ChannelScan, protocol.ChannelStatus}

func TestTerminalTopic(t *testing.T) {
	for _, tc := range []struct {
		store, terminal string
		ch              protocol.Channel
		want            string
	}{
		{"store-042", "till.3", protocol.ChannelTx, "tillsync/v1/stores/store-042/terminals/till.3/tx"},
		{"store-042", "till.3", protocol.ChannelAck, "tillsync/v1/stores/store-042/terminals/till.3/ack"},
		{"s", "t", protocol.ChannelQuery, "tillsync/v1/stores/s/terminals/t/query"},
		{"S_1", "T-2", protocol.ChannelReply, "tillsync/v1/stores/S_1/terminals/T-2/reply"},
	} {
		got, err := protocol.TerminalTopic(tc.store, tc.terminal, tc.ch)
		if err != nil {
			t.Errorf("TerminalTopic(%q, %q, %q): %v", tc.store, tc.terminal, tc.ch, err)
			continue
		}
		if got != tc.want {
			t.Errorf("TerminalTopic(%q, %q, %q) = %q, want %q", tc.store, tc.terminal, tc.ch, got, tc.want)
		}
	}
	if !strings.HasPrefix(protocol.TopicRoot, "tillsync/v") || protocol.TopicRoot != "tillsync/v1" {
		t.Errorf("TopicRoot %q does not carry Version %d", protocol.TopicRoot, protocol.Version)
	}
}

func TestTerminalTopicRefuses(t *testing.T) {
	for _, tc := range []struct {
		name            string
		store, terminal string
		ch              protocol.Channel
		code            protocol.Code
		field           string
	}{
		{"store empty", "", "t", protocol.ChannelTx, protocol.CodeMissingField, "store"},
		{"terminal empty", "s", "", protocol.ChannelTx, protocol.CodeMissingField, "terminal"},
		{"store plus", "+", "t", protocol.ChannelTx, protocol.CodeInvalidID, "store"},
		{"store hash", "#", "t", protocol.ChannelTx, protocol.CodeInvalidID, "store"},
		{"store slash", "s/x", "t", protocol.ChannelTx, protocol.CodeInvalidID, "store"},
		{"terminal plus", "s", "t+", protocol.ChannelAck, protocol.CodeInvalidID, "terminal"},
		{"terminal hash", "s", "t#", protocol.ChannelAck, protocol.CodeInvalidID, "terminal"},
		{"terminal slash", "s", "a/b", protocol.ChannelAck, protocol.CodeInvalidID, "terminal"},
		{"terminal dotdot", "s", "..", protocol.ChannelAck, protocol.CodeInvalidID, "terminal"},
		{"terminal nul", "s", "t\x00", protocol.ChannelAck, protocol.CodeInvalidID, "terminal"},
		{"channel empty", "s", "t", "", protocol.CodeMalformed, "channel"},
		{"channel hash", "s", "t", "#", protocol.CodeMalformed, "channel"},
		{"channel plus", "s", "t", "+", protocol.CodeMalformed, "channel"},
		{"channel with slash", "s", "t", "tx/more", protocol.CodeMalformed, "channel"},
		{"channel unknown", "s", "t", "acks", protocol.CodeMalformed, "channel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := protocol.TerminalTopic(tc.store, tc.terminal, tc.ch)
			if got != "" {
				t.Errorf("returned topic %q", got)
			}
			checkErr(t, err, tc.code, tc.field)
		})
	}
}

func TestAllTerminals(t *testing.T) {
	want := map[protocol.Channel]string{
		protocol.ChannelTx:     "tillsync/v1/stores/+/terminals/+/tx",
		protocol.ChannelAck:    "tillsync/v1/stores/+/terminals/+/ack",
		protocol.ChannelQuery:  "tillsync/v1/stores/+/terminals/+/query",
		protocol.ChannelReply:  "tillsync/v1/stores/+/terminals/+/reply",
		protocol.ChannelScan:   "tillsync/v1/stores/+/terminals/+/scan",
		protocol.ChannelStatus: "tillsync/v1/stores/+/terminals/+/status",
	}
	for _, ch := range channels {
		if got := protocol.AllTerminals(ch); got != want[ch] {
			t.Errorf("AllTerminals(%q) = %q, want %q", ch, got, want[ch])
		}
		// A filter is not a topic: the parser must refuse it.
		if _, _, _, err := protocol.ParseTerminalTopic(protocol.AllTerminals(ch)); err == nil {
			t.Errorf("ParseTerminalTopic accepted the filter %q", protocol.AllTerminals(ch))
		}
	}
}

func TestParseTerminalTopicRoundTrip(t *testing.T) {
	long := strings.Repeat("z", protocol.MaxIDLen)
	for _, ids := range [][2]string{{"store-042", "till.3"}, {"s", "t"}, {long, long}, {"...", "a..b"}, {"_", "-"}} {
		for _, ch := range channels {
			topic, err := protocol.TerminalTopic(ids[0], ids[1], ch)
			if err != nil {
				t.Fatal(err)
			}
			store, terminal, gotCh, err := protocol.ParseTerminalTopic(topic)
			if err != nil {
				t.Errorf("ParseTerminalTopic(%q): %v", topic, err)
				continue
			}
			if store != ids[0] || terminal != ids[1] || gotCh != ch {
				t.Errorf("ParseTerminalTopic(%q) = %q, %q, %q", topic, store, terminal, gotCh)
			}
		}
	}
}

func TestParseTerminalTopicRefuses(t *testing.T) {
	for _, tc := range []struct {
		topic string
		code  protocol.Code
	}{
		// Wrong root.
		{"", protocol.CodeMalformed},
		{"tillsync", protocol.CodeMalformed},
		{"tillsync/v1", protocol.CodeMalformed},
		{"tillsync/v2/stores/s/terminals/t/tx", protocol.CodeMalformed},
		{"tillsync/v0/stores/s/terminals/t/tx", protocol.CodeMalformed},
		{"Tillsync/v1/stores/s/terminals/t/tx", protocol.CodeMalformed},
		{"/tillsync/v1/stores/s/terminals/t/tx", protocol.CodeMalformed},
		{"other/v1/stores/s/terminals/t/tx", protocol.CodeMalformed},
		{"tillsync/v1x/stores/s/terminals/t/tx", protocol.CodeMalformed},
		{"$SYS/tillsync/v1/stores/s/terminals/t/tx", protocol.CodeMalformed},
		// Wrong shape.
		{"tillsync/v1/", protocol.CodeMalformed},
		{"tillsync/v1/stores", protocol.CodeMalformed},
		{"tillsync/v1/stores/s", protocol.CodeMalformed},
		{"tillsync/v1/stores/s/terminals/t", protocol.CodeMalformed},
		{"tillsync/v1/stores/s/tx", protocol.CodeMalformed},
		{"tillsync/v1/store/s/terminals/t/tx", protocol.CodeMalformed},
		{"tillsync/v1/stores/s/terminal/t/tx", protocol.CodeMalformed},
		{"tillsync/v1/Stores/s/terminals/t/tx", protocol.CodeMalformed},
		{"tillsync/v1/terminals/t/stores/s/tx", protocol.CodeMalformed},
		{"tillsync/v1//s/terminals/t/tx", protocol.CodeMalformed},
		// Extra levels.
		{"tillsync/v1/stores/s/terminals/t/tx/", protocol.CodeMalformed},
		{"tillsync/v1/stores/s/terminals/t/tx/extra", protocol.CodeMalformed},
		{"tillsync/v1/stores/s/terminals/t/x/tx", protocol.CodeMalformed},
		{"tillsync/v1/stores/s/sub/terminals/t/tx", protocol.CodeMalformed},
		{"tillsync/v1/stores/s/terminals/t/tx/#", protocol.CodeMalformed},
		// Unknown channel.
		{"tillsync/v1/stores/s/terminals/t/", protocol.CodeMalformed},
		{"tillsync/v1/stores/s/terminals/t/TX", protocol.CodeMalformed},
		{"tillsync/v1/stores/s/terminals/t/acks", protocol.CodeMalformed},
		{"tillsync/v1/stores/s/terminals/t/tx ", protocol.CodeMalformed},
		{"tillsync/v1/stores/s/terminals/t/#", protocol.CodeMalformed},
		{"tillsync/v1/stores/s/terminals/t/+", protocol.CodeMalformed},
		{"tillsync/v1/stores/s/terminals/t/tx\n", protocol.CodeMalformed},
		// Invalid ids.
		{"tillsync/v1/stores//terminals/t/tx", protocol.CodeInvalidID},
		{"tillsync/v1/stores/s/terminals//tx", protocol.CodeInvalidID},
		{"tillsync/v1/stores/+/terminals/t/tx", protocol.CodeInvalidID},
		{"tillsync/v1/stores/s/terminals/+/tx", protocol.CodeInvalidID},
		{"tillsync/v1/stores/#/terminals/t/tx", protocol.CodeInvalidID},
		{"tillsync/v1/stores/s/terminals/a#/tx", protocol.CodeInvalidID},
		{"tillsync/v1/stores/../terminals/t/tx", protocol.CodeInvalidID},
		{"tillsync/v1/stores/./terminals/t/tx", protocol.CodeInvalidID},
		{"tillsync/v1/stores/a b/terminals/t/tx", protocol.CodeInvalidID},
		{"tillsync/v1/stores/s/terminals/t\x00/tx", protocol.CodeInvalidID},
		{"tillsync/v1/stores/café/terminals/t/tx", protocol.CodeInvalidID},
		{"tillsync/v1/stores/" + strings.Repeat("s", 65) + "/terminals/t/tx", protocol.CodeInvalidID},
	} {
		store, terminal, ch, err := protocol.ParseTerminalTopic(tc.topic)
		if store != "" || terminal != "" || ch != "" {
			t.Errorf("ParseTerminalTopic(%q) returned %q, %q, %q with %v", tc.topic, store, terminal, ch, err)
		}
		if err == nil {
			t.Errorf("ParseTerminalTopic(%q) accepted", tc.topic)
			continue
		}
		t.Run("", func(t *testing.T) { checkErr(t, err, tc.code, "topic") })
	}
}
