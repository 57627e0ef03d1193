package protocol

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
)

// Message authentication between an enrolled till and the hub.
//
// An external broker (Mosquitto, EMQX) does not tell the hub who published
// a message, so an enrolled terminal and the hub authenticate what they
// send each other themselves: at enrollment the hub gives the terminal a
// random key of MACKeyLen bytes (its MAC key), and every Batch,
// BalanceQuery and Sighting the till sends, and every AckBatch and
// BalanceReply the hub sends it, carries an HMAC-SHA256 under that key in
// its "mac" member.
//
// What the MAC covers is bytes, not a re-encoding: the message is encoded
// with its MAC empty (so without the member: omitempty), giving body, a
// JSON object ending in '}'; the MAC is
//
//	HMAC-SHA256(key, "tillsync-mac-1" 0x00 topic 0x00 body)
//
// and the message sent is body with the member `,"mac":"<MAC, base64url
// without padding: 43 characters>"` placed before its closing '}' (Seal).
// The reader decodes the message as usual (the member is an ordinary
// field), then checks that the payload ends in exactly that member holding
// the decoded value, and recomputes the MAC over the payload without it
// (VerifyMAC) — no second encoding, no canonical form to agree on, one
// HMAC per message whatever it holds. The topic is covered so that a
// message cannot be replayed on another channel (an ack as a reply, a
// query as a batch) or for another terminal.
//
// A Config is the same for every till of a store and carries no MAC: the
// hub signs it instead (configsig.go).

// MACKeyLen is the length of a terminal's MAC key.
const MACKeyLen = 32

// macB64Len is the length of a MAC in base64url without padding.
const macB64Len = 43

// macMember opens the MAC member Seal adds before a message's closing brace.
const macMember = `,"mac":"`

// macContext starts what every MAC covers; the digit versions the scheme.
const macContext = "tillsync-mac-1\x00"

// Errors of VerifyMAC.
var (
	// ErrMACMissing is returned by VerifyMAC for a message without a MAC.
	ErrMACMissing = errors.New("message has no MAC")
	// ErrMACInvalid is returned by VerifyMAC for a MAC that is not the
	// message's last member, is not 43 characters of base64url, or does not
	// match the message under the key.
	ErrMACInvalid = errors.New("message MAC does not verify")
	// ErrNoMACKey is returned by VerifyMAC when there is no key to check
	// the MAC with.
	ErrNoMACKey = errors.New("no MAC key to verify the message with")
)

// Seal returns the message encoded in body (Encode of a message whose MAC
// is empty) with its MAC under key for topic added as its last member.
// body is not modified. It fails only for a body that is not a JSON
// object with members, or a key of the wrong length.
func Seal(key []byte, topic string, body []byte) ([]byte, error) {
	if len(key) != MACKeyLen {
		return nil, errors.New("protocol: seal: the MAC key must be 32 bytes")
	}
	if len(body) < 3 || body[0] != '{' || body[len(body)-1] != '}' {
		return nil, errors.New("protocol: seal: not an encoded message")
	}
	var sum [sha256.Size]byte
	m := macOf(key, topic, body[:len(body)-1], sum[:0])
	out := make([]byte, 0, len(body)+len(macMember)+macB64Len+2)
	out = append(out, body[:len(body)-1]...)
	out = append(out, macMember...)
	out = base64.RawURLEncoding.AppendEncode(out, m)
	return append(out, '"', '}'), nil
}

// VerifyMAC checks the MAC of payload, a message received on topic whose
// decoded "mac" member is mac, against key: nil when payload ends in
// exactly the member Seal adds, holding mac, and mac is the HMAC of the
// rest under key. It returns ErrMACMissing when mac is empty, ErrNoMACKey
// when key is, and ErrMACInvalid otherwise.
func VerifyMAC(key []byte, topic string, payload []byte, mac string) error {
	switch {
	case mac == "":
		return ErrMACMissing
	case len(key) == 0:
		return ErrNoMACKey
	case len(mac) != macB64Len:
		return ErrMACInvalid
	}
	// Every message has members of its own before the MAC: "{" at least.
	n := len(payload) - len(macMember) - macB64Len - 2
	if n < 2 || payload[0] != '{' {
		return ErrMACInvalid
	}
	if string(payload[n:n+len(macMember)]) != macMember || string(payload[n+len(macMember):len(payload)-2]) != mac || string(payload[len(payload)-2:]) != `"}` {
		return ErrMACInvalid
	}
	var got, sum [sha256.Size]byte
	if k, err := macEncoding.Decode(got[:], payload[n+len(macMember):len(payload)-2]); err != nil || k != len(got) {
		return ErrMACInvalid
	}
	if !hmac.Equal(got[:], macOf(key, topic, payload[:n], sum[:0])) {
		return ErrMACInvalid
	}
	return nil
}

// macEncoding reads a MAC: base64url, no padding, no stray bits.
var macEncoding = base64.RawURLEncoding.Strict()

// macOf appends to dst the HMAC of a message whose body, without its
// closing brace, is open.
func macOf(key []byte, topic string, open, dst []byte) []byte {
	var h hash.Hash = hmac.New(sha256.New, key)
	var buf [128]byte
	prefix := append(append(append(buf[:0], macContext...), topic...), 0)
	h.Write(prefix)
	h.Write(open)
	h.Write(closeBrace)
	return h.Sum(dst)
}

var closeBrace = []byte{'}'}
