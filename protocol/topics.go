package protocol

import "strings"

// TopicRoot is the versioned root of every tillsync topic.
const TopicRoot = "tillsync/v1"

// Channel names the last level of a terminal topic.
type Channel string

// The channels of a terminal.
const (
	// ChannelTx carries Batches, agent to hub.
	ChannelTx Channel = "tx"
	// ChannelAck carries AckBatches, hub to agent.
	ChannelAck Channel = "ack"
	// ChannelQuery carries BalanceQueries, agent to hub.
	ChannelQuery Channel = "query"
	// ChannelReply carries BalanceReplies, hub to agent.
	ChannelReply Channel = "reply"
	// ChannelScan carries Sightings of member tokens, agent to hub.
	ChannelScan Channel = "scan"
	// ChannelStatus carries TerminalStatuses, retained, agent to hub (and
	// the agent's last will, from the broker).
	ChannelStatus Channel = "status"
)

// TerminalTopic returns tillsync/v1/stores/{store}/terminals/{terminal}/{ch}.
// Callers pass validated ids; an invalid id or an unknown channel yields an
// *Error so that no wildcard or separator ever reaches a topic.
func TerminalTopic(store, terminal string, ch Channel) (string, error) {
	if err := checkID("store", store); err != nil {
		return "", err
	}
	if err := checkID("terminal", terminal); err != nil {
		return "", err
	}
	if !validChannel(ch) {
		return "", Errorf(CodeMalformed, "channel", "unknown channel %q", string(ch))
	}
	return TopicRoot + "/stores/" + store + "/terminals/" + terminal + "/" + string(ch), nil
}

// AllTerminals returns the subscription filter matching ch for every terminal
// of every store: tillsync/v1/stores/+/terminals/+/{ch}.
func AllTerminals(ch Channel) string {
	return TopicRoot + "/stores/+/terminals/+/" + string(ch)
}

// ParseTerminalTopic splits a terminal topic into its store, terminal and
// channel, refusing anything that is not exactly that shape with valid ids.
func ParseTerminalTopic(topic string) (store, terminal string, ch Channel, err error) {
	rest, ok := strings.CutPrefix(topic, TopicRoot+"/")
	if !ok {
		return "", "", "", Errorf(CodeMalformed, "topic", "not under %s", TopicRoot)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 5 || parts[0] != "stores" || parts[2] != "terminals" {
		return "", "", "", Errorf(CodeMalformed, "topic", "want %s/stores/{store}/terminals/{terminal}/{channel}", TopicRoot)
	}
	if !ValidID(parts[1]) || !ValidID(parts[3]) {
		return "", "", "", Errorf(CodeInvalidID, "topic", "store or terminal is not a valid id")
	}
	if c := Channel(parts[4]); validChannel(c) {
		return parts[1], parts[3], c, nil
	}
	return "", "", "", Errorf(CodeMalformed, "topic", "unknown channel %q", parts[4])
}

func validChannel(c Channel) bool {
	switch c {
	case ChannelTx, ChannelAck, ChannelQuery, ChannelReply, ChannelScan, ChannelStatus:
		return true
	}
	return false
}

// ConfigTopic returns tillsync/v1/stores/{store}/config, where the hub
// publishes the store's Config, retained. It is a store topic, not a
// terminal one: every till of the store reads the same config.
func ConfigTopic(store string) (string, error) {
	if err := checkID("store", store); err != nil {
		return "", err
	}
	return TopicRoot + "/stores/" + store + "/config", nil
}

// AgentClientID is the MQTT client id of a terminal's agent:
// "tillsync-agent:{store}:{terminal}". ':' is not allowed in ids, so no two
// terminals share one; the hub's broker lets a client use only the topics
// of the terminal its id names.
func AgentClientID(store, terminal string) string {
	return "tillsync-agent:" + store + ":" + terminal
}

// ParseAgentClientID is the inverse of AgentClientID: ok only for exactly
// "tillsync-agent:{store}:{terminal}" with valid ids.
func ParseAgentClientID(id string) (store, terminal string, ok bool) {
	rest, found := strings.CutPrefix(id, "tillsync-agent:")
	if !found {
		return "", "", false
	}
	store, terminal, found = strings.Cut(rest, ":")
	if !found || !ValidID(store) || !ValidID(terminal) {
		return "", "", false
	}
	return store, terminal, true
}

// AgentUsername is the MQTT username of an enrolled terminal:
// "tillsync-agent@{store}@{terminal}". It is the client id with '@' for
// ':', because Mosquitto's password file cannot hold a username with a ':'
// (and '@', like ':', is not allowed in ids, so the split is unambiguous).
// Terminals enrolled before Version 3 have their client id as username;
// the hub's broker accepts both.
func AgentUsername(store, terminal string) string {
	return "tillsync-agent@" + store + "@" + terminal
}

// ParseAgentUsername is the inverse of AgentUsername: ok only for exactly
// "tillsync-agent@{store}@{terminal}" with valid ids.
func ParseAgentUsername(name string) (store, terminal string, ok bool) {
	rest, found := strings.CutPrefix(name, "tillsync-agent@")
	if !found {
		return "", "", false
	}
	store, terminal, found = strings.Cut(rest, "@")
	if !found || !ValidID(store) || !ValidID(terminal) {
		return "", "", false
	}
	return store, terminal, true
}

// ParseTerminalUsername reads a terminal's MQTT username in either form,
// AgentUsername or (enrolled before Version 3) AgentClientID.
func ParseTerminalUsername(name string) (store, terminal string, ok bool) {
	if store, terminal, ok = ParseAgentUsername(name); ok {
		return store, terminal, true
	}
	return ParseAgentClientID(name)
}
