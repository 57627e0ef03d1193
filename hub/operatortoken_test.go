package hub_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// readOperatorToken reads and parses the operator token file in dir.
func readOperatorToken(t *testing.T, path string) (token, id string, secret []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(data), "\n") || strings.Count(string(data), "\n") != 1 {
		t.Fatalf("%s holds %q: want the token on one line", path, data)
	}
	token = strings.TrimSpace(string(data))
	id, secret, err = protocol.ParseAPIToken(token)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return token, id, secret
}

// stopRunning stops a hub start made, so that the test can start another
// on the same data dir.
func stopRunning(r *running) {
	r.stop()
	err := <-r.finished
	r.finished <- err // the cleanup waits for it
}

// TestOperatorToken: the first start makes an operator token, writes it to
// operator.token and logs where (never the token); later starts keep it;
// once every operator token is revoked, the next start makes a new one;
// NewOperatorToken makes one anyway.
func TestOperatorToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, hub.OperatorTokenFile)
	var logs testkit.Buffer
	r := start(t, hub.Options{DataDir: dir, Logger: testLogger(&logs)})
	token, id, secret := readOperatorToken(t, path)
	tok, err := r.hub.Ledger().AuthenticateAPIToken(id, secret, r.clock.Now())
	if err != nil || tok.Role != ledger.RoleOperator || tok.Partner != "" {
		t.Fatalf("the token in %s: %+v, %v", path, tok, err)
	}
	for _, want := range []string{"operator API token created", path, "token_id=" + id} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not mention %q:\n%s", want, logs.String())
		}
	}
	if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), token[len("TSA1."+id+"."):]) {
		t.Fatal("the operator token's secret is in the log")
	}
	stopRunning(r)

	var logs2 testkit.Buffer
	r = start(t, hub.Options{DataDir: dir, Logger: testLogger(&logs2)})
	if again, _, _ := readOperatorToken(t, path); again != token || strings.Contains(logs2.String(), "operator API token created") {
		t.Fatalf("a second start made another token (log:\n%s)", logs2.String())
	}
	if list, _ := r.hub.Ledger().APITokens(); len(list) != 1 {
		t.Fatalf("tokens after a restart: %+v", list)
	}
	// Every operator token revoked: the next start makes a new one. A
	// read-only token does not count.
	if _, _, err := r.hub.Ledger().CreateAPIToken(ledger.APIToken{Role: ledger.RoleReadOnly}, r.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.hub.Ledger().RevokeAPIToken(id, r.clock.Now()); err != nil {
		t.Fatal(err)
	}
	stopRunning(r)
	r = start(t, hub.Options{DataDir: dir})
	next, nextID, nextSecret := readOperatorToken(t, path)
	if next == token {
		t.Fatal("no new operator token after every operator token was revoked")
	}
	if _, err := r.hub.Ledger().AuthenticateAPIToken(nextID, nextSecret, r.clock.Now()); err != nil {
		t.Fatal(err)
	}
	stopRunning(r)
	// Asked for: a new one, the old one still valid.
	r = start(t, hub.Options{DataDir: dir, NewOperatorToken: true})
	if fresh, _, _ := readOperatorToken(t, path); fresh == next {
		t.Fatal("NewOperatorToken did not replace the file")
	}
	if _, err := r.hub.Ledger().AuthenticateAPIToken(nextID, nextSecret, r.clock.Now()); err != nil {
		t.Fatalf("the previous operator token after NewOperatorToken: %v", err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("a temporary file is left: %v", err)
	}
}

// An operator token file that cannot be written stops Open, and the token
// it made is revoked, so the next start makes one again.
func TestOperatorTokenUnwritable(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "missing", "operator.token")
	_, err := hub.Open(hub.Options{DataDir: dir, BrokerURL: "tcp://127.0.0.1:1", OperatorTokenFile: bad})
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Open with an unwritable token file: %v", err)
	}
	st, err := ledger.OpenBolt(filepath.Join(dir, hub.LedgerFile), ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := st.APITokens()
	st.Close()
	if err != nil || len(list) != 1 || list[0].RevokedAt.IsZero() {
		t.Fatalf("tokens after the failed start: %+v, %v; want the one made, revoked", list, err)
	}
	r := start(t, hub.Options{DataDir: dir})
	_, id, secret := readOperatorToken(t, filepath.Join(dir, hub.OperatorTokenFile))
	if _, err := r.hub.Ledger().AuthenticateAPIToken(id, secret, r.clock.Now()); err != nil {
		t.Fatal(err)
	}
}
