package protocol_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/protocol"
	"github.com/tillsync/tillsync/protocol/fuzzlimit"
)

// configTopic is the fixtures' config topic, of validConfig's store.
func configTopic(t testing.TB) string {
	t.Helper()
	s, err := protocol.ConfigTopic(validConfig().Store)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signConfig encodes c (its Sig left out) and signs it with priv for topic.
func signConfig(t testing.TB, priv ed25519.PrivateKey, topic string, c protocol.Config) []byte {
	t.Helper()
	c.Sig = ""
	p, err := protocol.SignConfig(priv, topic, encode(t, &c))
	if err != nil {
		t.Fatalf("SignConfig: %v", err)
	}
	return p
}

// TestSignVerifyConfig: a signed config decodes to what was signed plus
// its signature, is still the version every till reads, and verifies with
// its key among the keys given, for its own topic only.
func TestSignVerifyConfig(t *testing.T) {
	topic := configTopic(t)
	c := tokenKeysConfig()
	body := encode(t, &c)
	p := signConfig(t, tokenKeyA, topic, c)
	if !bytes.HasPrefix(p, body[:len(body)-1]) || len(p) != len(body)+len(`,"sig":""`)+95 {
		t.Fatalf("signed %s\nfrom %s", p, body)
	}
	got, err := protocol.DecodeConfig(p)
	if err != nil {
		t.Fatalf("decode the signed config: %v", err)
	}
	if got.Version != protocol.UnsealedVersion {
		t.Errorf("signed config of version %d, want %d: tills of version 2 must read it", got.Version, protocol.UnsealedVersion)
	}
	if id := protocol.ConfigSigKeyID(got.Sig); id != protocol.TokenKeyID(tokenPubA) {
		t.Errorf("ConfigSigKeyID = %q, want %q", id, protocol.TokenKeyID(tokenPubA))
	}
	want := c
	want.Sig = got.Sig
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("decoded\n %+v\nwant %+v", got, want)
	}
	// What a reader that knows nothing of signatures sees: the same config.
	var old map[string]json.RawMessage
	if err := json.Unmarshal(p, &old); err != nil {
		t.Fatal(err)
	}
	delete(old, "sig")
	if !reflect.DeepEqual(old, func() map[string]json.RawMessage {
		var m map[string]json.RawMessage
		json.Unmarshal(body, &m)
		return m
	}()) {
		t.Fatal("the signed config differs from the unsigned one by more than its sig member")
	}
	if err := protocol.VerifyConfig([]ed25519.PublicKey{tokenPubB, tokenPubA}, topic, p, got.Sig); err != nil {
		t.Fatalf("VerifyConfig: %v", err)
	}
	other, _ := protocol.ConfigTopic("store-043")
	for name, c := range map[string]struct {
		err  error
		want error
	}{
		"another store's topic": {protocol.VerifyConfig([]ed25519.PublicKey{tokenPubA}, other, p, got.Sig), protocol.ErrConfigSigInvalid},
		"a terminal topic":      {protocol.VerifyConfig([]ed25519.PublicKey{tokenPubA}, mustTopic(t, protocol.ChannelAck), p, got.Sig), protocol.ErrConfigSigInvalid},
		"another key only":      {protocol.VerifyConfig([]ed25519.PublicKey{tokenPubB}, topic, p, got.Sig), protocol.ErrConfigKeyUnknown},
		"no keys":               {protocol.VerifyConfig(nil, topic, p, got.Sig), protocol.ErrConfigKeyUnknown},
		"a key that is no key":  {protocol.VerifyConfig([]ed25519.PublicKey{tokenPubA[:31]}, topic, p, got.Sig), protocol.ErrConfigKeyUnknown},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", name, c.err, c.want)
		}
	}
}

// TestVerifyConfigRefuses: anything but the exact signed bytes is refused
// — every byte changed, the rules or keys altered, the signature moved,
// repeated, re-spelt or taken from another config — and an unsigned config
// or an unknown key is told apart.
func TestVerifyConfigRefuses(t *testing.T) {
	topic := configTopic(t)
	keys := []ed25519.PublicKey{tokenPubB, tokenPubA}
	c := validConfig()
	p := signConfig(t, tokenKeyA, topic, c)
	d, err := protocol.DecodeConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	sig := d.Sig
	for i := range p {
		for _, x := range []byte{1, 0x20, 0x80} {
			b := bytes.Clone(p)
			b[i] ^= x
			ds := sig // the decoder's view of the signature, when the change leaves one
			if d, err := protocol.DecodeConfig(b); err == nil {
				ds = d.Sig
			}
			if protocol.VerifyConfig(keys, topic, b, ds) == nil {
				t.Fatalf("byte %d ^ %#x accepted: %s", i, x, b)
			}
		}
	}
	body := encode(t, &c)
	open := string(body[:len(body)-1])
	c2 := c
	c2.PointValue = "0.02"
	_, sig2, _ := strings.Cut(string(signConfig(t, tokenKeyA, topic, c2)), `"sig":"`)
	sig2 = strings.TrimSuffix(sig2, `"}`)
	byB := string(signConfig(t, tokenKeyB, topic, c))
	_, sigB, _ := strings.Cut(byB, `"sig":"`)
	sigB = strings.TrimSuffix(sigB, `"}`)
	relabelled := sigB[:8] + sig[8:] // A's signature under B's key id
	upper := strings.ToUpper(sig[:8]) + sig[8:]
	richer := c
	richer.Rules = append([]protocol.RuleSet(nil), c.Rules...)
	richer.Rules[1].Points = 100
	tampered := encode(t, &richer)
	withKey := c
	withKey.MemberTokenKeys = []string{protocol.EncodeTokenKey(tokenPubB)}
	keyed := encode(t, &withKey)
	for name, tc := range map[string]struct {
		payload []byte
		sig     string
		want    error
	}{
		"unsigned":                   {body, "", protocol.ErrConfigUnsigned},
		"a signature it lacks":       {body, sig, protocol.ErrConfigSigInvalid},
		"trailing whitespace":        {append(bytes.Clone(p), ' '), sig, protocol.ErrConfigSigInvalid},
		"the signature first":        {[]byte(`{"sig":"` + sig + `",` + string(body[1:])), sig, protocol.ErrConfigSigInvalid},
		"another config's signature": {[]byte(open + `,"sig":"` + sig2 + `"}`), sig2, protocol.ErrConfigSigInvalid},
		"the rules altered":          {[]byte(string(tampered[:len(tampered)-1]) + `,"sig":"` + sig + `"}`), sig, protocol.ErrConfigSigInvalid},
		"a key of its own added":     {[]byte(string(keyed[:len(keyed)-1]) + `,"sig":"` + sig + `"}`), sig, protocol.ErrConfigSigInvalid},
		"another trusted key's id":   {[]byte(open + `,"sig":"` + relabelled + `"}`), relabelled, protocol.ErrConfigSigInvalid},
		"the key id in upper case":   {[]byte(open + `,"sig":"` + upper + `"}`), upper, protocol.ErrConfigKeyUnknown},
		"a signature too short":      {[]byte(open + `,"sig":"` + sig[:94] + `"}`), sig[:94], protocol.ErrConfigSigInvalid},
		"padding added":              {[]byte(open + `,"sig":"` + sig + `=="}`), sig + "==", protocol.ErrConfigSigInvalid},
		"no dot":                     {[]byte(open + `,"sig":"` + sig[:8] + "x" + sig[9:] + `"}`), sig[:8] + "x" + sig[9:], protocol.ErrConfigSigInvalid},
		"a signature in an object":   {[]byte(`{"x":{"sig":"` + sig + `"}}`), sig, protocol.ErrConfigSigInvalid},
		"only the signature":         {[]byte(`{"sig":"` + sig + `"}`), sig, protocol.ErrConfigSigInvalid},
	} {
		if err := protocol.VerifyConfig(keys, topic, tc.payload, tc.sig); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if err := protocol.VerifyConfig(keys, topic, []byte(byB), sigB); err != nil {
		t.Errorf("signed by the other trusted key: %v", err)
	}
	// A repeated member is covered like any other: the decoder takes the
	// last, the signature covers both.
	dup, err := protocol.SignConfig(tokenKeyA, topic, []byte(open+`,"point_value":"0.05"}`))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := protocol.DecodeConfig(dup); err != nil || d.PointValue != "0.05" || protocol.VerifyConfig(keys, topic, dup, d.Sig) != nil {
		t.Errorf("a signed config with a repeated member: %+v, %v", d, err)
	}
	for _, s := range []string{"", sig[:94], upper, "zzzzzzzz." + sig[9:]} {
		if id := protocol.ConfigSigKeyID(s); id != "" {
			t.Errorf("ConfigSigKeyID(%q) = %q", s, id)
		}
	}
}

func TestSignConfigRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		key  ed25519.PrivateKey
		body string
	}{
		"a public key":  {ed25519.PrivateKey(tokenPubA), `{"a":1}`},
		"no key":        {nil, `{"a":1}`},
		"not an object": {tokenKeyA, `[1]`},
		"empty object":  {tokenKeyA, `{}`},
		"empty":         {tokenKeyA, ``},
	} {
		if _, err := protocol.SignConfig(c.key, "t", []byte(c.body)); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}

// TestSignedConfigGolden pins the signature: testdata/config_signed.json
// holds the exact bytes (not indented: the signature covers every byte) of
// the golden config with its member token keys, signed with tokenKeyA (the
// key of 32 bytes of 7) on its config topic — Ed25519 signatures are
// deterministic — so that another implementation can check against ours.
func TestSignedConfigGolden(t *testing.T) {
	topic := configTopic(t)
	p := signConfig(t, tokenKeyA, topic, tokenKeysConfig())
	path := filepath.Join("testdata", "config_signed.json")
	if *update {
		if err := os.WriteFile(path, p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./protocol -update to create it)", err)
	}
	if !bytes.Equal(p, golden) {
		t.Fatalf("SignConfig differs from %s (run go test ./protocol -update if the change is deliberate)\n got %s\nwant %s", path, p, golden)
	}
	d, err := protocol.DecodeConfig(golden)
	if err != nil {
		t.Fatal(err)
	}
	if err := protocol.VerifyConfig([]ed25519.PublicKey{tokenPubA}, topic, golden, d.Sig); err != nil {
		t.Fatal(err)
	}
}

// FuzzVerifyConfig: whatever arrives on a store's config topic, a
// signature that verifies means the payload is exactly SignConfig of the
// payload without it, by a key given — nothing else about the bytes can
// vary — and a refusal is one of VerifyConfig's errors.
func FuzzVerifyConfig(f *testing.F) {
	topic := configTopic(f)
	f.Add(signConfig(f, tokenKeyA, topic, tokenKeysConfig()))
	f.Add(signConfig(f, tokenKeyB, topic, validConfig()))
	f.Add(encode(f, ptr(validConfig())))
	keys := []ed25519.PublicKey{tokenPubB, tokenPubA}
	f.Fuzz(func(t *testing.T, payload []byte) {
		fuzzlimit.Check(t)
		c, err := protocol.DecodeConfig(payload)
		if err != nil {
			return // refused before its signature is looked at
		}
		if err := protocol.VerifyConfig(keys, topic, payload, c.Sig); err != nil {
			if !errors.Is(err, protocol.ErrConfigSigInvalid) && !errors.Is(err, protocol.ErrConfigUnsigned) && !errors.Is(err, protocol.ErrConfigKeyUnknown) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		priv := tokenKeyA
		switch protocol.ConfigSigKeyID(c.Sig) {
		case protocol.TokenKeyID(tokenPubA):
		case protocol.TokenKeyID(tokenPubB):
			priv = tokenKeyB
		default:
			t.Fatalf("verified with key id %q", protocol.ConfigSigKeyID(c.Sig))
		}
		n := len(payload) - len(`,"sig":""}`) - 95
		back, err := protocol.SignConfig(priv, topic, append(bytes.Clone(payload[:n]), '}'))
		if err != nil || !bytes.Equal(back, payload) {
			t.Fatalf("accepted %q, which is not a signed config (%q, %v)", payload, back, err)
		}
	})
}

// BenchmarkConfigSig: what the signature costs a config — verifying (a
// till, on every config it receives), signing (the hub, for every store's
// config it publishes) — against decoding it, for the golden config and
// one of MaxRuleVersions versions.
func BenchmarkConfigSig(b *testing.B) {
	topic := configTopic(b)
	keys := []ed25519.PublicKey{tokenPubB, tokenPubA}
	for _, n := range []int{2, protocol.MaxRuleVersions} {
		c := tokenKeysConfig()
		if n > len(c.Rules) {
			c.Rules = nVersions(n)
			for i := range c.Rules {
				c.Rules[i] = validConfig().Rules[1]
				c.Rules[i].Version = int64(i + 1)
			}
		}
		body := encode(b, &c)
		p := signConfig(b, tokenKeyA, topic, c)
		d, err := protocol.DecodeConfig(p)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("verify/versions="+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				if err := protocol.VerifyConfig(keys, topic, p, d.Sig); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("sign/versions="+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := protocol.SignConfig(tokenKeyA, topic, body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("decode/versions="+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := protocol.DecodeConfig(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
