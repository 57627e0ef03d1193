package uplink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
)

// TLSHint explains a connection error an operator must fix at the till or
// the hub (a certificate the till cannot verify, TLS spoken to a plain
// port or the other way round) in words that say what to do; "" for any
// other error, which retrying may cure.
func TLSHint(err error) string {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var inv x509.CertificateInvalidError
	var rec tls.RecordHeaderError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &unknown):
		return "the hub's certificate is not signed by the CA this till trusts: give the till the hub's CA (hub_ca, from tillsync-hub tls ca)"
	case errors.As(err, &host):
		return "the hub's certificate does not name the address this till uses: add it to the hub with serve --tls-name, or use a name the certificate has (tillsync-hub tls show)"
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return "the hub's certificate has expired, or this till's clock is wrong: restart the hub to renew it, or set the till's clock"
	case errors.As(err, &rec):
		return "the hub's port does not speak TLS: use the hub's TLS address (serve --mqtt-listen), or tcp:// for its plain listener"
	case strings.Contains(err.Error(), "tls: "):
		return "the TLS handshake with the hub failed: check the hub address's scheme (tls:// for the hub's TLS port) and hub_ca"
	}
	return ""
}

// AuthHint explains the broker's refusal of the till's credentials in
// words that say what to do; "" for any other error. Retrying does not
// cure it: the terminal was revoked or enrolled again elsewhere, or it has
// not enrolled and the hub requires it.
func AuthHint(err error) string {
	if err == nil {
		return ""
	}
	if m := err.Error(); strings.Contains(m, "not Authorized") || strings.Contains(m, "bad user name or password") {
		return "the hub refused this till's credentials: its terminal was revoked or enrolled again, or it has not enrolled and the hub requires it; enroll it again with a new token (tillsync-hub terminal token, then tillsync-agent enroll --force)"
	}
	return ""
}
