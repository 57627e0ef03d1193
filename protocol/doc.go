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

// Version is the wire protocol version. It is part of every topic root
// (tillsync/v1/…) and is carried in every batch so a hub can refuse what it
// does not understand.
//
// History:
//   - 1 (2026-11-23): transactions (earn, burn, reverse, void), batches,
//     acks (applied, duplicate, rejected with a code), balance queries.
const Version = 1
