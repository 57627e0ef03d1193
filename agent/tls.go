package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
)

// TLSSchemes are the broker URL schemes that mean MQTT over TLS.
var TLSSchemes = []string{"tls", "ssl", "mqtts", "tcps"}

// IsTLSBroker reports whether broker names MQTT over TLS.
func IsTLSBroker(broker string) bool {
	u, err := url.Parse(broker)
	if err != nil {
		return false
	}
	for _, s := range TLSSchemes {
		if u.Scheme == s {
			return true
		}
	}
	return false
}

// HubTLSConfig is the TLS configuration for broker: nil for plain MQTT; for TLS,
// verification of the hub's certificate against caPEM (the system's roots
// when empty) for the broker's host name, TLS 1.2 or later. It never skips
// verification.
func HubTLSConfig(broker string, caPEM []byte) (*tls.Config, error) {
	if !IsTLSBroker(broker) {
		if len(caPEM) > 0 {
			return nil, fmt.Errorf("agent: a hub CA is given but the hub address %s is plain MQTT; use tls://HOST:PORT", broker)
		}
		return nil, nil
	}
	u, _ := url.Parse(broker)
	// ServerName set here, not left to the dialer: paho's proxy path
	// (all_proxy) does not derive it from the address.
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("agent: the hub CA holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
