// Package protocol is the wire contract between tillsync-agent and tillsync-hub:
// the messages they exchange over MQTT, the topics they use, the rules every
// identifier and amount obeys, the size limits, and the stable error codes that
// cross the wire.
//
// Both sides import it; it imports only the standard library (a test enforces
// that), so the contract can be read, vendored and fuzzed on its own.
//
// Messages are JSON with snake_case field names. Money is integer minor units
// with an ISO 4217 currency; points are int64. Fields are added, never
// redefined; a retired field is marked "Deprecated: … as of Version N".
package protocol

// Version is the wire protocol version. It is carried in every message so a
// hub can refuse what it does not understand. Versions add to the protocol
// without breaking it, so the topic root (tillsync/v1/…) names only the
// major generation and stays v1.
//
// History:
//   - 1 (2026-11-23): transactions (earn, burn, reverse, void), batches,
//     acks (applied, duplicate, rejected with a code), balance queries.
//   - 2 (2026-11-23): two-phase burns (kinds hold and capture), line items,
//     offline burns, the rules version an earn was quoted with, reverses by
//     returned amount, the held ack status, the points an ack booked, and the
//     per-store retained Config message carrying the partner's earn rules.
//     A hub speaking 2 still accepts batches and queries of version 1.
//   - 2, extended (2026-11-23): member tokens (signed rotating QR codes,
//     MintMemberToken, with their own format version in the token): the
//     coalition's public keys in Config.MemberTokenKeys, and the scan
//     channel carrying Sightings. Both are additions a reader of version 2
//     ignores (an unknown field; a QoS 0 publish an older hub's broker
//     drops), so Version stays 2: raising it would make every till of
//     version 2 refuse the hub's acks until it is upgraded.
//   - 3 (2026-11-23): message authentication (mac.go): an enrolled till
//     and the hub add an HMAC under the terminal's MAC key from enrollment
//     to every Batch, BalanceQuery, Sighting, AckBatch and BalanceReply
//     between them (the "mac" member); and the ack code seq_reused, for a
//     new transaction id under a terminal sequence number the hub has
//     seen with another id.
//   - 3, extended (2026-11-23): store configs signed (configsig.go): the
//     hub signs each Config with the coalition's member token key, over
//     the config's topic and bytes, in its "sig" member, and an enrolled
//     till takes only a config signed by a key it trusts. A reader of
//     version 2 ignores the member, so configs stay UnsealedVersion.
//   - 3, extended (2026-11-23): the status channel (ChannelStatus): a
//     till publishes its TerminalStatus retained (online, agent version,
//     backlog, scanner, clock offset, offline exposure and its cap) and sets one with
//     online false as its last will, ordered by a session counter. An
//     addition: a hub that does not know the channel never subscribes to
//     it, so Version stays 3. An external broker whose ACL does not grant
//     the channel (run tillsync-hub broker-config again) drops the
//     statuses and the will; the till syncs as before.
//   - 3, extended (2026-12-05): flow control: an AckBatch may carry the
//     hub's grant (Window), the most transactions the till may have in
//     flight, so that tills reconnecting with a backlog share the hub's
//     queue instead of overflowing it. A till that does not know the
//     member ignores it and keeps its own window, as before.
//
// Compatibility. Hubs are upgraded before their tills. A hub accepts
// every version from MinVersion to Version and answers each till in the
// version it spoke, so a till of version 2 reads its acks and replies (and
// ignores a "mac" member it does not know). A message without a MAC is
// sent as UnsealedVersion: a till that holds no MAC key (not enrolled, or
// enrolled at a hub of version 2) sends exactly what a till of version 2
// sends, and keeps working with a hub of version 2. The hub's store
// configs carry no MAC — they are signed instead — and are published as
// UnsealedVersion too, so tills of version 2 keep reading them. What a
// MAC or a signature is required for is the hub's and the enrolled
// till's rule, not the version's: see the hub's ingest and the agent's
// uplink.
const Version = 3

// UnsealedVersion is the version of a message without a MAC: nothing
// else changed in Version 3, so it is read by every reader of version 2.
const UnsealedVersion = 2

// MinVersion is the oldest Version a hub accepts from a till.
const MinVersion = 1
