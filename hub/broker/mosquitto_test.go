package broker_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/hub/broker"
)

const testHash = "$7$101$c2FsdHNhbHRzYWx0$aGFzaA=="

func testSetup() broker.MosquittoSetup {
	return broker.MosquittoSetup{
		Hub: broker.MosquittoAccount{Username: broker.HubUsername, Hash: testHash},
		Terminals: []broker.MosquittoAccount{
			{Username: "tillsync-agent@s1@t1", Hash: testHash, Store: "s1", Terminal: "t1"},
			{Username: "tillsync-agent@s-2@till.3", Hash: testHash, Store: "s-2", Terminal: "till.3"},
		},
		Listen: "8883", PlainListen: "127.0.0.1:1883",
		CertPEM: []byte("cert"), KeyPEM: []byte("key"), CAPEM: []byte("ca"),
	}
}

// TestMosquittoACL pins the ACL: the embedded broker's rules, line by line.
func TestMosquittoACL(t *testing.T) {
	acl, err := broker.MosquittoACL(testSetup())
	if err != nil {
		t.Fatal(err)
	}
	want := `# tillsync: each terminal only its own topics, the hub everything under tillsync/v1.
# Mosquitto denies whatever no line here allows, to anonymous clients too.

user tillsync-hub
topic readwrite tillsync/v1/#

# terminal t1 of store s1
user tillsync-agent@s1@t1
topic write tillsync/v1/stores/s1/terminals/t1/tx
topic write tillsync/v1/stores/s1/terminals/t1/query
topic write tillsync/v1/stores/s1/terminals/t1/scan
topic write tillsync/v1/stores/s1/terminals/t1/status
topic read tillsync/v1/stores/s1/terminals/t1/ack
topic read tillsync/v1/stores/s1/terminals/t1/reply
topic read tillsync/v1/stores/s1/config

# terminal till.3 of store s-2
user tillsync-agent@s-2@till.3
topic write tillsync/v1/stores/s-2/terminals/till.3/tx
topic write tillsync/v1/stores/s-2/terminals/till.3/query
topic write tillsync/v1/stores/s-2/terminals/till.3/scan
topic write tillsync/v1/stores/s-2/terminals/till.3/status
topic read tillsync/v1/stores/s-2/terminals/till.3/ack
topic read tillsync/v1/stores/s-2/terminals/till.3/reply
topic read tillsync/v1/stores/s-2/config
`
	if string(acl) != want {
		t.Fatalf("ACL:\n%s\nwant:\n%s", acl, want)
	}
	pw, err := broker.MosquittoPasswords(testSetup())
	if err != nil {
		t.Fatal(err)
	}
	if want := "tillsync-hub:" + testHash + "\ntillsync-agent@s1@t1:" + testHash + "\ntillsync-agent@s-2@till.3:" + testHash + "\n"; string(pw) != want {
		t.Fatalf("passwords:\n%s\nwant:\n%s", pw, want)
	}
}

func TestMosquittoConf(t *testing.T) {
	conf, err := broker.MosquittoConf("/etc/mq", testSetup())
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"per_listener_settings false", "allow_anonymous false", "password_file /etc/mq/passwords", "acl_file /etc/mq/acl",
		"max_packet_size 540672", "set_tcp_nodelay true", "max_queued_messages 10000", "listener 8883\nuse_username_as_clientid true\ncertfile /etc/mq/server.pem\nkeyfile /etc/mq/server.key",
		"listener 1883 127.0.0.1\nuse_username_as_clientid true",
	} {
		if !strings.Contains(string(conf), line+"\n") {
			t.Errorf("the configuration lacks %q:\n%s", line, conf)
		}
	}
	// use_username_as_clientid before any listener would open Mosquitto's default listener.
	if i, j := strings.Index(string(conf), "\nuse_username_as_clientid"), strings.Index(string(conf), "\nlistener "); i < j {
		t.Errorf("use_username_as_clientid outside a listener:\n%s", conf)
	}
	for _, s := range []broker.MosquittoSetup{
		{Hub: testSetup().Hub},
		{Hub: testSetup().Hub, Listen: "localhost"},
		{Hub: testSetup().Hub, Listen: "1.2.3.4:99999"},
	} {
		if _, err := broker.MosquittoConf("/x", s); err == nil {
			t.Errorf("listeners %q %q accepted", s.Listen, s.PlainListen)
		}
	}
}

func TestMosquittoRefusesBadAccounts(t *testing.T) {
	for _, a := range []broker.MosquittoAccount{
		{Username: "tillsync-agent:s1:t1", Hash: testHash, Store: "s1", Terminal: "t1"},
		{Username: "a b", Hash: testHash, Store: "s1", Terminal: "t1"},
		{Username: "x\nuser tillsync-hub", Hash: testHash, Store: "s1", Terminal: "t1"},
		{Username: "tillsync-agent@s1@t1", Hash: "plain", Store: "s1", Terminal: "t1"},
		{Username: "tillsync-agent@s1@t1", Hash: testHash, Store: "s/1", Terminal: "t1"},
	} {
		s := testSetup()
		s.Terminals = []broker.MosquittoAccount{a}
		_, errP := broker.MosquittoPasswords(s)
		_, errA := broker.MosquittoACL(s)
		if errP == nil && errA == nil {
			t.Errorf("account %+v accepted", a)
		}
	}
}

// TestWriteMosquitto: the files, with the modes they are made with; a
// rewrite keeps the mode an operator gave a file.
func TestWriteMosquitto(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mq")
	files, err := broker.WriteMosquitto(dir, testSetup())
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 6 || filepath.Base(files[len(files)-1]) != broker.MosquittoConfFile {
		t.Fatalf("files %v", files)
	}
	if runtime.GOOS == "windows" {
		return
	}
	for name, mode := range map[string]os.FileMode{"passwords": 0o600, "acl": 0o600, "server.key": 0o600, "server.pem": 0o644, "mosquitto.conf": 0o644} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want %v", name, fi.Mode().Perm(), err, mode)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "passwords"), 0o640); err != nil {
		t.Fatal(err)
	}
	s := testSetup()
	s.Terminals = s.Terminals[:1]
	if _, err := broker.WriteMosquitto(dir, s); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "passwords"))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("rewritten passwords: %v, %v; want the operator's 0640", fi.Mode().Perm(), err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "passwords")); strings.Contains(string(data), "till.3") {
		t.Fatal("the rewrite kept a terminal it no longer lists")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
