// Package chaos is tillsync's fault harness: it proves the one promise —
// nothing a till accepted is lost or applied twice, and nothing a till
// declined takes effect — with real processes under seeded faults, and
// checks the whole history afterwards.
//
// A run (Run) starts a real tillsync-hub (ledger in bbolt, embedded MQTT
// broker) and real tillsync-agent processes on loopback, enrolled as an
// installer would enroll them. Each till's MQTT line runs through a Proxy
// of ours that reads whole MQTT packets and can take the line down, stall
// it, delay it, lose PUBLISH and PUBACK packets, deliver PUBLISHes twice,
// or cut the connection. POS workers send earns, burns (online, and
// offline within the tills' offline policy), returns and balance lookups,
// each with an Idempotency-Key, and — as a POS does — send a request again
// with the same key until it has an answer.
//
// The faults come from a Schedule, a pure function of the seed (Plan):
// kill -9 of agents in the middle of their traffic, kill -9 of the hub,
// the hub killed right after a ledger commit and before that commit's acks
// (tillsync-hub's hidden --fault-kill-after-commit), broker restarts,
// partitions and blackholes, delay, loss and duplication, and tills whose
// clocks are up to a day off (tillsync-agent's hidden
// --fault-clock-offset). The same seed replays the same schedule, and
// each POS worker sends the same requests (only a return depends on
// timing: which earlier earn it names, or an earn in its place when none
// had its answer yet); what
// cannot replay exactly is the interleaving of real processes: which
// packet a 20% loss hits, which transactions a commit holds when the hub
// dies after it.
//
// After the load it heals everything, waits until every POS request has
// its answer and every outbox is empty (within DefaultDrainWithin), stops
// the processes and hands the ledger and every POS answer to Check, which
// lists each violation of the promise (see Check for the list).
//
// The harness runs from tillsync-sim chaos (make chaos); CrashLoop, the
// thousand kill -9s of one agent, from tillsync-sim crashloop. Both need
// the binaries built (make build) and run on Unix and Windows alike; only
// the proxy's packet parsing requires the tills to speak plain MQTT to it,
// so the harness runs the hub's plain listener on loopback.
package chaos
