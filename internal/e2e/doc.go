// Package e2e holds tillsync's end-to-end tests: a real hub (broker, ledger)
// and real agents (outbox, uplink, POS API) in one process, talking over a
// real MQTT broker — the embedded one on a random port, and also the one named
// by TILLSYNC_TEST_MQTT when set — with each side stopped and restarted
// mid-stream. The checks are on the full history: what the POS API was told
// against what the ledger holds.
//
// TLS: TestOverTLS and the embedded-tls run of the outage test put the
// embedded broker on TLS with the hub's own CA (hub/pki), the tills
// verifying it; with TILLSYNC_E2E_TLS=1 every test on the embedded broker
// runs over TLS.
//
// External brokers: TestMosquittoSetup sets up a real Mosquitto (skipped
// without one) with tillsync-hub broker-config and checks that it confines
// each terminal as the embedded broker does; TestMACOnPermissiveBroker
// shows that on a broker without access rules the MACs alone keep a
// store from speaking for another.
package e2e
