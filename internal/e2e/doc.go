// Package e2e holds tillsync's end-to-end tests: a real hub (broker, ledger)
// and real agents (outbox, uplink, POS API) in one process, talking over a
// real MQTT broker — the embedded one on a random port, and also the one named
// by TILLSYNC_TEST_MQTT when set — with each side stopped and restarted
// mid-stream. The checks are on the full history: what the POS API was told
// against what the ledger holds.
package e2e
