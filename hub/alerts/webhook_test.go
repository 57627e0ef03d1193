package alerts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/alerts"
	"github.com/tillsync/tillsync/internal/clock"
)

// receiver is a webhook receiver that checks signatures like a real one.
type receiver struct {
	srv    *httptest.Server
	secret string
	// fail answers this many requests 503 first.
	fail atomic.Int32
	mu   sync.Mutex
	got  []alerts.Notice
	hdrs []http.Header
	bad  []string
	hits atomic.Int32
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := &receiver{secret: secret}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		if r.fail.Add(-1) >= 0 {
			http.Error(w, "down for a moment", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if !alerts.Verify(r.secret, body, req.Header.Get(alerts.SignatureHeader)) {
			r.bad = append(r.bad, "bad signature: "+req.Header.Get(alerts.SignatureHeader))
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var n alerts.Notice
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&n); err != nil {
			r.bad = append(r.bad, err.Error())
		}
		r.got = append(r.got, n)
		r.hdrs = append(r.hdrs, req.Header.Clone())
	}))
	r.fail.Store(0)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) notices() ([]alerts.Notice, []http.Header, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]alerts.Notice(nil), r.got...), append([]http.Header(nil), r.hdrs...), append([]string(nil), r.bad...)
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWebhookFiringAndRecovery(t *testing.T) {
	rcv := newReceiver(t, "s3cret")
	cfg := mustParse(t, `hub: hub-test
webhooks:
  - url: `+rcv.srv.URL+`/hook
    secret: s3cret
    bearer: tok
    headers: {X-Env: test}
rules:
  - name: stuck
    condition: oldest_unsynced
    threshold: 10m
    for: 1m
    severity: critical
`)
	snd := alerts.NewSender(alerts.SenderOptions{Webhooks: cfg.Webhooks, Backoff: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go snd.Run(ctx)
	clk := clock.NewFake(t0)
	src := &fakeSource{}
	e := alerts.New(alerts.Options{Config: cfg, Source: src, Notify: snd.Send, Clock: clk})
	src.set(alerts.StoreFacts{Store: "s1", Partner: "p1", Terminals: []alerts.TerminalFacts{{Terminal: "t1", OldestUnsynced: t0.Add(-11 * time.Minute)}}})
	e.Evaluate()
	clk.Advance(time.Minute)
	e.Evaluate()
	waitFor(t, 5*time.Second, func() bool { n, _, _ := rcv.notices(); return len(n) == 1 })
	src.set(alerts.StoreFacts{Store: "s1", Partner: "p1", Terminals: []alerts.TerminalFacts{{Terminal: "t1"}}})
	clk.Advance(time.Minute)
	e.Evaluate()
	clk.Advance(time.Minute)
	e.Evaluate()
	waitFor(t, 5*time.Second, func() bool { n, _, _ := rcv.notices(); return len(n) == 2 })
	ns, hs, bad := rcv.notices()
	if len(bad) > 0 {
		t.Fatalf("receiver refused: %v", bad)
	}
	f, r := ns[0], ns[1]
	if f.State != alerts.Firing || f.Alert != "stuck" || f.Store != "s1" || f.Partner != "p1" || f.Severity != alerts.Critical || f.Hub != "hub-test" ||
		f.Threshold != 600 || f.Value != 12*60 || f.Unit != "seconds" || !f.Since.Equal(t0) || !f.At.Equal(t0.Add(time.Minute)) {
		t.Errorf("firing %+v", f)
	}
	if r.State != alerts.Resolved || r.ID != f.ID || r.Alert != "stuck" || r.Store != "s1" || !r.Since.Equal(t0) || !r.At.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("resolved %+v", r)
	}
	h := hs[0]
	if h.Get("Authorization") != "Bearer tok" || h.Get("X-Env") != "test" || h.Get("Content-Type") != "application/json" || h.Get(alerts.NoticeHeader) != f.ID+" firing" {
		t.Errorf("headers %v", h)
	}
}

func TestWebhookRetries(t *testing.T) {
	rcv := newReceiver(t, "k")
	rcv.fail.Store(3)
	snd := alerts.NewSender(alerts.SenderOptions{
		Webhooks: []alerts.Webhook{{URL: rcv.srv.URL, Secret: "k", Retries: 5, Timeout: time.Second}},
		Backoff:  5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go snd.Run(ctx)
	snd.Send(alerts.Notice{ID: "a/s1/1", Alert: "a", Store: "s1", State: alerts.Firing})
	waitFor(t, 5*time.Second, func() bool { n, _, _ := rcv.notices(); return len(n) == 1 })
	if h := rcv.hits.Load(); h != 4 {
		t.Errorf("%d requests, want 3 failed and 1 delivered", h)
	}
}

func TestWebhookGivesUpAndWrongSecret(t *testing.T) {
	rcv := newReceiver(t, "right")
	snd := alerts.NewSender(alerts.SenderOptions{
		Webhooks: []alerts.Webhook{{URL: rcv.srv.URL, Secret: "wrong", Retries: 3, Timeout: time.Second}},
		Backoff:  time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go snd.Run(ctx)
	snd.Send(alerts.Notice{ID: "x", State: alerts.Firing})
	// 401 is not worth retrying: one request, refused for its signature.
	waitFor(t, 5*time.Second, func() bool { _, _, bad := rcv.notices(); return len(bad) == 1 })
	time.Sleep(50 * time.Millisecond)
	if h := rcv.hits.Load(); h != 1 {
		t.Errorf("%d requests for a 401", h)
	}
}

func TestWebhookQueueNeverBlocks(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	snd := alerts.NewSender(alerts.SenderOptions{Webhooks: []alerts.Webhook{{URL: srv.URL, Queue: 2, Timeout: time.Minute}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go snd.Run(ctx)
	done := make(chan struct{})
	go func() {
		for range 10 {
			snd.Send(alerts.Notice{ID: "x", State: alerts.Firing})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Send blocked on a stuck receiver")
	}
	// One in flight, two queued, the rest dropped.
	if d := snd.Dropped(); d < 7 || d > 8 {
		t.Errorf("dropped %d", d)
	}
}

// A 429 with Retry-After is tried again no sooner than it asks.
func TestWebhookRetryAfter(t *testing.T) {
	var first, second atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first.CompareAndSwap(0, time.Now().UnixNano()) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		second.CompareAndSwap(0, time.Now().UnixNano())
	}))
	defer srv.Close()
	snd := alerts.NewSender(alerts.SenderOptions{Webhooks: []alerts.Webhook{{URL: srv.URL, Retries: 2, Timeout: time.Second}}, Backoff: time.Millisecond, MaxBackoff: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go snd.Run(ctx)
	snd.Send(alerts.Notice{ID: "x", State: alerts.Firing})
	waitFor(t, 5*time.Second, func() bool { return second.Load() != 0 })
	if d := time.Duration(second.Load() - first.Load()); d < time.Second {
		t.Errorf("tried again after %v, the receiver asked for 1s", d)
	}
}
