package perf

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/internal/proc"
	"github.com/tillsync/tillsync/protocol"
)

// confirmRounds interleave the agent's earns with the baseline's updates,
// so that both see the same disk weather.
const confirmRounds = 4

// confirm is scenario 1: a POS earn at a real, enrolled agent (its POS
// API, its durable outbox commit), one request after another as one POS
// sends them, against a bare bbolt Update of the same writes in the same
// directory.
func (b *bench) confirm(ctx context.Context) error {
	fmt.Fprintf(b.o.Out, "== 1 till confirm: %d POS earns at an agent, against a bare bbolt Update of the same size\n", b.o.Confirms)
	h, err := b.hub(ctx, "confirm-hub", false, nil)
	if err != nil {
		return err
	}
	defer h.Kill()
	c := b.coal.Terminals[0]
	dir := b.dir("confirm-agent")
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	e := agent.Enrollment{Store: c.Store, Terminal: c.Terminal, Partner: c.Partner, Username: c.Username, Password: c.Password,
		MQTT: h.MQTT, MACKey: base64.RawURLEncoding.EncodeToString(c.MACKey)}
	if err := agent.SaveEnrollment(dir, e, key, h.CA); err != nil {
		return err
	}
	pos, err := proc.FreePort()
	if err != nil {
		return err
	}
	ag := &proc.Proc{Name: "agent", Bin: filepath.Join(b.o.Bin, proc.Exe("tillsync-agent")), Log: dir + ".log"}
	if err := ag.Start("run", "--data-dir", dir, "--hub", h.MQTT, "--pos-listen", pos, "--log-level", "warn"); err != nil {
		return err
	}
	defer ag.Stop()
	client := &http.Client{Timeout: 10 * time.Second}
	err = proc.WaitFor(ctx, 30*time.Second, "the agent's POS API", func() (bool, error) {
		if !ag.Running() {
			return false, fmt.Errorf("perf: the agent exited at its start; see %s", ag.Log)
		}
		resp, err := client.Get("http://" + pos + "/v1/health")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return err
	}
	bareDir := b.dir("confirm-bbolt")
	if err := os.MkdirAll(bareDir, 0o700); err != nil {
		return err
	}
	db, err := bolt.Open(filepath.Join(bareDir, "bare.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("b")); return err }); err != nil {
		return err
	}
	var ids agent.IDs
	// What the outbox writes for an earn, in size: the transaction and
	// the POS's idempotency record of the answer.
	record := bytes.Repeat([]byte("x"), 200)
	update := func(n int) error {
		tx := earn(c, ids.Next(time.Now()), n, time.Now(), DefaultMembers)
		enc, err := protocol.Encode(&tx)
		if err != nil {
			return err
		}
		return db.Update(func(btx *bolt.Tx) error {
			bk := btx.Bucket([]byte("b"))
			if err := bk.Put(binary.BigEndian.AppendUint64([]byte("q"), uint64(n)), enc); err != nil {
				return err
			}
			return bk.Put([]byte("i"+tx.ID), record)
		})
	}
	earnReq := func(n int) error {
		body := fmt.Sprintf(`{"member": "M%08d", "amount": 1250, "currency": "EUR", "receipt": "R%d"}`, n%10000, n)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+pos+"/v1/earn", bytes.NewBufferString(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", fmt.Sprintf("bench-%d", n))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("POST /v1/earn: %s: %s", resp.Status, msg)
		}
		return nil
	}
	// Warm both up: the files, the connection, the code paths.
	for n := range 50 {
		if err := update(-n - 1); err != nil {
			return err
		}
		if err := earnReq(-n - 1); err != nil {
			return err
		}
	}
	var at, base Samples
	per := max(1, b.o.Confirms/confirmRounds)
	for r := range confirmRounds {
		for i := range per {
			n := r*per + i
			t0 := time.Now()
			if err := update(n); err != nil {
				return err
			}
			base.Add(time.Since(t0))
		}
		for i := range per {
			n := r*per + i
			t0 := time.Now()
			if err := earnReq(n); err != nil {
				return err
			}
			at.Add(time.Since(t0))
		}
	}
	fig, bp := at.Quantile(0.99), base.Quantile(0.99)
	ratio := float64(fig) / float64(bp)
	b.row(Row{ID: "1", What: "till confirm: POS earn, durable (p99)", Figure: "p99 " + ms(fig), Baseline: "p99 " + ms(bp), Ratio: ratio,
		Target: "p99 ≤ 2× baseline", Met: ratio <= 2,
		Note: fmt.Sprintf("p50 %s against the baseline's %s; %d earns, one after another, as one POS sends them", ms(at.Quantile(0.5)), ms(base.Quantile(0.5)), at.Len())})
	if err := ag.Stop(); err != nil {
		return err
	}
	return h.Stop()
}
