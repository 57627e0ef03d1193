package uplink_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/agent/uplink"
)

func TestTLSHint(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("connect to tls://hub:8883: network Error : %w", err) }
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("dial tcp 127.0.0.1:8883: connect: connection refused"), ""},
		{wrap(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), "hub_ca"},
		{wrap(x509.HostnameError{Certificate: &x509.Certificate{}, Host: "hub"}), "--tls-name"},
		{wrap(x509.CertificateInvalidError{Reason: x509.Expired}), "expired"},
		{wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), "does not speak TLS"},
	} {
		if got := uplink.TLSHint(tc.err); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("TLSHint(%v) = %q, want it to mention %q", tc.err, got, tc.want)
		}
	}
}

func TestAuthHint(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{errors.New("connect to tls://hub:8883: not Authorized"), true},
		{errors.New("connect to tls://hub:8883: bad user name or password"), true},
		{errors.New("connect to tls://hub:8883: EOF"), false},
		{nil, false},
	} {
		if got := uplink.AuthHint(tc.err); (got != "") != tc.want || (tc.want && !strings.Contains(got, "tillsync-agent enroll")) {
			t.Errorf("AuthHint(%v) = %q", tc.err, got)
		}
	}
}
