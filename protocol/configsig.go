package protocol

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
)

// Store configs are signed by the hub with the coalition's member token
// key (the Ed25519 key whose public half every till holds from its
// enrollment), because one retained message serves every till of a store
// and a per-terminal MAC cannot: on an external broker whose access rules
// are wrong, anybody could otherwise publish a config with keys of their
// own (the tills would take member QR codes they mint) or with altered
// earn rules (the tills would quote by them offline).
//
// The signature is placed as the MAC is (mac.go): the config is encoded
// with Sig empty (so without the member), giving body; the hub signs
//
//	"tillsync-config-1" 0x00 topic 0x00 body
//
// with pure Ed25519, and publishes body with the member
// `,"sig":"<key id>.<signature>"` placed before its closing '}' (SignConfig):
// the key id is TokenKeyID of the signing key (8 hex digits, lower case),
// the signature 64 bytes in base64url without padding (86 characters). The
// reader decodes the config as usual, checks that the payload ends in
// exactly that member holding the decoded value, and verifies the
// signature over the payload without it (VerifyConfig): no second
// encoding, one Ed25519 verification whatever the config holds. The topic
// is covered, so that a store's genuine config cannot be replayed as
// another store's.
//
// The member is an addition a reader of version 2 ignores (an unknown
// field), so configs stay UnsealedVersion: every till reads them, and what
// a signature is required for is the enrolled till's rule (agent/uplink).

// configSigLen is the length of Config.Sig: key id, dot, signature.
const configSigLen = 2*tokenKeyIDLen + 1 + configSigB64Len

// configSigB64Len is an Ed25519 signature in base64url without padding.
const configSigB64Len = 86

// sigMember opens the signature member SignConfig adds.
const sigMember = `,"sig":"`

// configSigContext starts what every config signature covers; the digit
// versions the scheme.
const configSigContext = "tillsync-config-1\x00"

// Errors of VerifyConfig.
var (
	// ErrConfigUnsigned is returned by VerifyConfig for a config without
	// a signature.
	ErrConfigUnsigned = errors.New("config is not signed")
	// ErrConfigKeyUnknown is returned by VerifyConfig for a config signed
	// by a key that is not among the keys it was given.
	ErrConfigKeyUnknown = errors.New("config is signed by a key this side does not trust")
	// ErrConfigSigInvalid is returned by VerifyConfig for a signature that
	// is not the config's last member, is not of the form SignConfig
	// writes, or does not verify.
	ErrConfigSigInvalid = errors.New("config signature does not verify")
)

// SignConfig returns the config encoded in body (Encode of a Config whose
// Sig is empty) with its signature under priv for topic (ConfigTopic of
// its store) added as its last member. body is not modified. It fails
// only for a body that is not a JSON object with members, or a key that
// is not an Ed25519 private key.
func SignConfig(priv ed25519.PrivateKey, topic string, body []byte) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("protocol: sign config: not an Ed25519 private key")
	}
	if len(body) < 3 || body[0] != '{' || body[len(body)-1] != '}' {
		return nil, errors.New("protocol: sign config: not an encoded config")
	}
	sig := ed25519.Sign(priv, configSigned(topic, body[:len(body)-1]))
	out := make([]byte, 0, len(body)+len(sigMember)+configSigLen+2)
	out = append(out, body[:len(body)-1]...)
	out = append(out, sigMember...)
	out = hex.AppendEncode(out, keyID(priv.Public().(ed25519.PublicKey)))
	out = append(out, '.')
	out = base64.RawURLEncoding.AppendEncode(out, sig)
	return append(out, '"', '}'), nil
}

// VerifyConfig checks the signature of payload, a config received on
// topic whose decoded "sig" member is sig, against keys: nil when payload
// ends in exactly the member SignConfig adds, holding sig, signed by one
// of keys over the rest. It returns ErrConfigUnsigned when sig is empty,
// ErrConfigKeyUnknown when no key of keys has the signature's key id (so
// also when keys is empty), and ErrConfigSigInvalid otherwise.
func VerifyConfig(keys []ed25519.PublicKey, topic string, payload []byte, sig string) error {
	switch {
	case sig == "":
		return ErrConfigUnsigned
	case len(sig) != configSigLen || sig[2*tokenKeyIDLen] != '.':
		return ErrConfigSigInvalid
	}
	// Every config has members of its own before the signature.
	n := len(payload) - len(sigMember) - configSigLen - 2
	if n < 2 || payload[0] != '{' {
		return ErrConfigSigInvalid
	}
	if string(payload[n:n+len(sigMember)]) != sigMember || string(payload[n+len(sigMember):len(payload)-2]) != sig || string(payload[len(payload)-2:]) != `"}` {
		return ErrConfigSigInvalid
	}
	var raw [ed25519.SignatureSize]byte
	if k, err := b64.Decode(raw[:], payload[len(payload)-2-configSigB64Len:len(payload)-2]); err != nil || k != len(raw) {
		return ErrConfigSigInvalid
	}
	// The key id is compared as written, lower-case hex: one spelling per
	// signed config.
	var key ed25519.PublicKey
	var id [2 * tokenKeyIDLen]byte
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && string(hex.AppendEncode(id[:0], keyID(k))) == sig[:len(id)] {
			key = k
			break
		}
	}
	if key == nil {
		return ErrConfigKeyUnknown
	}
	if !ed25519.Verify(key, configSigned(topic, payload[:n]), raw[:]) {
		return ErrConfigSigInvalid
	}
	return nil
}

// ConfigSigKeyID returns the key id of a config signature as SignConfig
// writes it (TokenKeyID of the signing key), or "" when sig is not of that
// form: for logs.
func ConfigSigKeyID(sig string) string {
	if len(sig) != configSigLen || sig[2*tokenKeyIDLen] != '.' {
		return ""
	}
	for _, c := range sig[:2*tokenKeyIDLen] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return ""
		}
	}
	return sig[:2*tokenKeyIDLen]
}

// configSigned returns what a config signature covers, for a config whose
// body, without its closing brace, is open.
func configSigned(topic string, open []byte) []byte {
	m := make([]byte, 0, len(configSigContext)+len(topic)+1+len(open)+1)
	m = append(m, configSigContext...)
	m = append(m, topic...)
	m = append(m, 0)
	m = append(m, open...)
	return append(m, '}')
}
