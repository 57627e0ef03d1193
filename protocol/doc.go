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
const Version = 2

// MinVersion is the oldest Version a hub accepts from a till.
const MinVersion = 1
