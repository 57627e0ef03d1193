package broker

// Mosquitto 2.x setup for a hub that uses Mosquitto as its external broker:
// the same rules as the embedded broker's terminalACL, in Mosquitto's own
// files. tillsync-hub broker-config writes them; Mosquitto re-reads the
// password and ACL files when it gets SIGHUP.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tillsync/tillsync/protocol"
)

// The files WriteMosquitto writes into its directory.
const (
	MosquittoConfFile      = "mosquitto.conf"
	MosquittoPasswordsFile = "passwords"
	MosquittoACLFile       = "acl"
	MosquittoCertFile      = "server.pem"
	MosquittoKeyFile       = "server.key"
	MosquittoCAFile        = "ca.pem"
)

// MosquittoAccount is one user of Mosquitto's password file.
type MosquittoAccount struct {
	Username string
	// Hash is the password as the password file holds it ("$7$…").
	Hash string
	// Store and Terminal name a terminal's account; both empty for the hub's.
	Store, Terminal string
}

// MosquittoSetup is what WriteMosquitto writes.
type MosquittoSetup struct {
	// Hub is the hub's account: everything under protocol.TopicRoot.
	Hub MosquittoAccount
	// Terminals are the enrolled terminals' accounts: each its own topics.
	Terminals []MosquittoAccount
	// Listen is the TLS listener for tills (and the hub): a port, or
	// host:port to bind one address.
	Listen string
	// PlainListen, when set, is a plain listener (host:port), for a hub on
	// the broker's own machine; the caller keeps it on loopback.
	PlainListen string
	// CertPEM and KeyPEM are the TLS listener's certificate (chain after
	// it) and key; CAPEM is the CA that tills verify it against.
	CertPEM, KeyPEM, CAPEM []byte
}

// MosquittoMaxPacket is the largest packet the generated broker accepts,
// as the embedded broker does.
const MosquittoMaxPacket = MaxPacketSize

func (a MosquittoAccount) check() error {
	if a.Username == "" || strings.ContainsAny(a.Username, ": \t\r\n#+/") {
		return fmt.Errorf("broker: %q cannot be a Mosquitto username", a.Username)
	}
	if !strings.HasPrefix(a.Hash, "$7$") || strings.ContainsAny(a.Hash, ": \t\r\n") {
		return fmt.Errorf("broker: the password hash of %s is not in Mosquitto's $7$ form", a.Username)
	}
	return nil
}

// MosquittoPasswords is the password file: the hub, then every terminal.
func MosquittoPasswords(s MosquittoSetup) ([]byte, error) {
	var b bytes.Buffer
	for _, a := range append([]MosquittoAccount{s.Hub}, s.Terminals...) {
		if err := a.check(); err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s:%s\n", a.Username, a.Hash)
	}
	return b.Bytes(), nil
}

// MosquittoACL is the ACL file: the hub reads and writes everything under
// protocol.TopicRoot; a terminal writes only its own tx, query, scan and
// status topics and reads only its own ack and reply topics and its
// store's config (Mosquitto's ACL cannot confine retained publishes to
// the status topic as the embedded broker does: a batch retained on a tx
// topic only comes to the hub again, which answers it as a duplicate);
// nobody else (anonymous clients included) gets anything, because
// Mosquitto denies what no line allows.
func MosquittoACL(s MosquittoSetup) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# tillsync: each terminal only its own topics, the hub everything under " + protocol.TopicRoot + ".\n")
	b.WriteString("# Mosquitto denies whatever no line here allows, to anonymous clients too.\n\n")
	if err := s.Hub.check(); err != nil {
		return nil, err
	}
	fmt.Fprintf(&b, "user %s\ntopic readwrite %s/#\n", s.Hub.Username, protocol.TopicRoot)
	for _, a := range s.Terminals {
		if err := a.check(); err != nil {
			return nil, err
		}
		cfg, err := protocol.ConfigTopic(a.Store)
		if err != nil {
			return nil, fmt.Errorf("broker: account %s: %w", a.Username, err)
		}
		fmt.Fprintf(&b, "\n# terminal %s of store %s\nuser %s\n", a.Terminal, a.Store, a.Username)
		for _, c := range []struct {
			access string
			ch     protocol.Channel
		}{{"write", protocol.ChannelTx}, {"write", protocol.ChannelQuery}, {"write", protocol.ChannelScan}, {"write", protocol.ChannelStatus}, {"read", protocol.ChannelAck}, {"read", protocol.ChannelReply}} {
			topic, err := protocol.TerminalTopic(a.Store, a.Terminal, c.ch)
			if err != nil {
				return nil, fmt.Errorf("broker: account %s: %w", a.Username, err)
			}
			fmt.Fprintf(&b, "topic %s %s\n", c.access, topic)
		}
		fmt.Fprintf(&b, "topic read %s\n", cfg)
	}
	return b.Bytes(), nil
}

// listenerLine turns host:port or a port into Mosquitto's "listener PORT [ADDRESS]".
func listenerLine(addr string) (string, error) {
	if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
		return "listener " + addr, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("broker: listener %q: want PORT or HOST:PORT", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("broker: listener %q: want PORT or HOST:PORT", addr)
	}
	if host == "" {
		return "listener " + port, nil
	}
	return "listener " + port + " " + host, nil
}

// MosquittoMaxQueued is the QoS 1 messages Mosquitto queues for one
// client beyond those in flight (its default is 1,000): enough for a
// thousand tills' windows of batches queued for the hub at once.
const MosquittoMaxQueued = 10000

// MosquittoConf is the configuration for Mosquitto 2.x: the listeners,
// no anonymous clients, the password and ACL files in dir, every client
// known by its username (so nobody can take over a terminal's session by
// its client id), the hub's packet size limit, and TCP_NODELAY (without
// it, measured by tillsync-sim bench, a till's round trip through
// Mosquitto took 40 ms more: Nagle's algorithm against delayed ACKs).
func MosquittoConf(dir string, s MosquittoSetup) ([]byte, error) {
	if s.Listen == "" && s.PlainListen == "" {
		return nil, errors.New("broker: no listener")
	}
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Mosquitto 2.x for tillsync, written by tillsync-hub broker-config mosquitto.")
	w("# Run it again after a terminal enrolls or is revoked, then reload Mosquitto")
	w("# (kill -HUP its pid, or systemctl reload mosquitto): it re-reads %s and %s.", MosquittoPasswordsFile, MosquittoACLFile)
	w("")
	w("per_listener_settings false")
	w("allow_anonymous false")
	w("password_file %s", filepath.Join(dir, MosquittoPasswordsFile))
	w("acl_file %s", filepath.Join(dir, MosquittoACLFile))
	w("max_packet_size %d", MosquittoMaxPacket)
	w("# Small messages go out at once: with Nagle's algorithm an ack waits")
	w("# for the peer's delayed ACK, 40 ms on Linux, on every round trip.")
	w("set_tcp_nodelay true")
	w("# The hub's subscription takes every till's batches: a region of tills back from an")
	w("# outage sends thousands at once (a till has up to 10 in flight), and past this")
	w("# queue Mosquitto drops them and the tills must send them again.")
	w("max_queued_messages %d", MosquittoMaxQueued)
	w("# On each listener, a client is its username (use_username_as_clientid):")
	w("# nobody takes over a terminal's session by connecting with its client id.")
	if s.Listen != "" {
		l, err := listenerLine(s.Listen)
		if err != nil {
			return nil, err
		}
		w("")
		w("# MQTT over TLS with the hub's certificate; tills verify it against %s (the hub's CA, given at enrollment).", MosquittoCAFile)
		w("%s", l)
		w("use_username_as_clientid true")
		w("certfile %s", filepath.Join(dir, MosquittoCertFile))
		w("keyfile %s", filepath.Join(dir, MosquittoKeyFile))
		w("tls_version tlsv1.2")
	}
	if s.PlainListen != "" {
		l, err := listenerLine(s.PlainListen)
		if err != nil {
			return nil, err
		}
		w("")
		w("# Plain MQTT, for the hub on this machine.")
		w("%s", l)
		w("use_username_as_clientid true")
	}
	return b.Bytes(), nil
}

// WriteMosquitto writes the setup into dir (made owner-only when missing):
// mosquitto.conf, passwords, acl and, with a TLS listener, the
// certificate, key and CA it names. Each file is replaced whole (a temporary
// file renamed into place), so a Mosquitto reloading meanwhile reads the
// old file or the new one. New files are owner-only but for the
// certificates; a file replaced keeps its mode, owner and group. It
// returns the files it wrote.
func WriteMosquitto(dir string, s MosquittoSetup) ([]string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	conf, err := MosquittoConf(dir, s)
	if err != nil {
		return nil, err
	}
	pw, err := MosquittoPasswords(s)
	if err != nil {
		return nil, err
	}
	acl, err := MosquittoACL(s)
	if err != nil {
		return nil, err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{MosquittoPasswordsFile, pw, 0o600},
		{MosquittoACLFile, acl, 0o600},
	}
	if s.Listen != "" {
		if len(s.CertPEM) == 0 || len(s.KeyPEM) == 0 || len(s.CAPEM) == 0 {
			return nil, errors.New("broker: a TLS listener needs the certificate, its key and the CA")
		}
		files = append(files, []struct {
			name string
			data []byte
			mode os.FileMode
		}{{MosquittoCertFile, s.CertPEM, 0o644}, {MosquittoKeyFile, s.KeyPEM, 0o600}, {MosquittoCAFile, s.CAPEM, 0o644}}...)
	}
	// The configuration last: it names the others.
	files = append(files, struct {
		name string
		data []byte
		mode os.FileMode
	}{MosquittoConfFile, conf, 0o644})
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	var out []string
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := replaceFile(path, f.data, f.mode); err != nil {
			return out, fmt.Errorf("broker: write %s: %w", path, err)
		}
		out = append(out, path)
	}
	return out, nil
}

// replaceFile writes data to path through a temporary file in its
// directory, synced, then renamed over path. A file it replaces keeps its
// mode, and its owner and group where this user may give them: the
// operator lets Mosquitto's user read the files once, and every later run
// keeps it so.
func replaceFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
		keepOwner(tmp, fi)
	}
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	return err
}
