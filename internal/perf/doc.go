// Package perf is tillsync's performance bench: the load generator and the
// scenarios behind `make bench` and `tillsync-sim bench`, each measured
// beside a baseline taken in the same run on the same machine, so that a
// figure reads as a ratio to what the hardware gives, not as a number
// from somebody else's machine.
//
// The load generator speaks the real protocol as many terminals in one
// process: each simulated till is the agent's own uplink (agent/uplink:
// its window, its batching, MACs on every batch, MAC checks on every ack,
// its re-sends) over TLS with the terminal's enrolled credentials, in
// front of an outbox kept in memory (Outbox) instead of bbolt, so that
// what is measured is the hub, not a thousand tills' disks sharing one.
// The hub runs as its own process (tillsync-hub serve), provisioned with
// enrolled terminals before it starts (Provision), so the figures include
// everything a real hub does: TLS, authentication, the ACL, JSON, MACs,
// the group commit with its fsyncs, and the acks.
//
// Baselines:
//   - a till's confirm is held against a bare bbolt Update of the same
//     size in the same directory;
//   - ingest is held against the same terminals publishing the same
//     batches at QoS 1 to the same broker with nothing behind it
//     (tillsync-hub serve --bench-broker-only, or a Mosquitto without a
//     hub);
//   - latency under load is held against the same measurement idle.
//
// It is the one package besides the outbox and the ledger that imports
// bbolt, for scenario 1's baseline: a bare bbolt Update of the same
// writes, in the same directory as the agent's outbox.
//
// Benchmarks are measurements, never assertions: a scenario reports its
// figure and whether it met its target, and `make bench` prints the table
// (Table). The package's tests run the scenarios at a small scale and
// check what they count (every transaction applied once), not how fast.
package perf
