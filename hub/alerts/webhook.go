package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The headers a webhook request carries besides the body.
const (
	// SignatureHeader carries sha256=HEX, the HMAC-SHA256 of the body
	// keyed with the webhook's secret (only when it has one).
	SignatureHeader = "X-Tillsync-Signature"
	// NoticeHeader carries the notice's ID and state, "ID firing" or
	// "ID resolved": a receiver may see a notice twice (a retry after a
	// lost answer) and can drop the second.
	NoticeHeader = "X-Tillsync-Notice"
)

// Sign returns the value of SignatureHeader for body and secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig (SignatureHeader's value) signs body with
// secret, in constant time: for receivers written in Go.
func Verify(secret string, body []byte, sig string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(sig))
}

// SenderOptions configures a Sender.
type SenderOptions struct {
	Webhooks []Webhook
	// Client makes the requests; default a client without a timeout of
	// its own (each attempt has the webhook's Timeout).
	Client *http.Client
	// Backoff is the wait before the first retry, doubled for each next
	// one up to MaxBackoff, with jitter; defaults 1s and 1m. A receiver's
	// Retry-After (seconds) lengthens the wait, up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	Logger              *slog.Logger
}

// Sender posts notices to webhooks. Send only queues; Run delivers.
type Sender struct {
	o     SenderOptions
	log   *slog.Logger
	hooks []*hook
}

type hook struct {
	w       Webhook
	q       chan Notice
	dropped atomic.Int64
}

// NewSender returns a sender for the webhooks.
func NewSender(o SenderOptions) *Sender {
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Sender{o: o, log: o.Logger}
	for _, w := range o.Webhooks {
		if w.Timeout <= 0 {
			w.Timeout = DefaultTimeout
		}
		if w.Queue <= 0 {
			w.Queue = DefaultQueue
		}
		s.hooks = append(s.hooks, &hook{w: w, q: make(chan Notice, w.Queue)})
	}
	return s
}

// Send queues n for every webhook. It never blocks: a webhook whose queue
// is full drops the notice, and says so in the log.
func (s *Sender) Send(n Notice) {
	for _, h := range s.hooks {
		select {
		case h.q <- n:
		default:
			h.dropped.Add(1)
			s.log.Warn("alert notice dropped: the webhook's queue is full", "url", redact(h.w.URL), "alert", n.Alert, "store", n.Store, "state", n.State)
		}
	}
}

// Dropped counts the notices dropped for full queues, over all webhooks.
func (s *Sender) Dropped() int64 {
	var n int64
	for _, h := range s.hooks {
		n += h.dropped.Load()
	}
	return n
}

// Run delivers queued notices, each webhook in its order, until ctx is
// done; what is still queued then is dropped.
func (s *Sender) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, h := range s.hooks {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					if n := len(h.q); n > 0 {
						s.log.Warn("alert notices not delivered: the hub stopped", "url", redact(h.w.URL), "notices", n)
					}
					return
				case n := <-h.q:
					s.deliver(ctx, h, n)
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// deliver posts n to h, trying again with backoff after a failure, up to
// the webhook's Retries.
func (s *Sender) deliver(ctx context.Context, h *hook, n Notice) {
	body, err := json.Marshal(n)
	if err != nil {
		s.log.Error("alert notice not encoded", "err", err)
		return
	}
	wait := s.o.Backoff
	for attempt := 0; ; attempt++ {
		err := s.post(ctx, h.w, n, body)
		if err == nil {
			s.log.Debug("alert notice delivered", "url", redact(h.w.URL), "alert", n.Alert, "store", n.Store, "state", n.State, "attempts", attempt+1)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if attempt >= h.w.Retries || !retryable(err) {
			s.log.Error("alert notice not delivered", "url", redact(h.w.URL), "alert", n.Alert, "store", n.Store, "state", n.State, "attempts", attempt+1, "err", err)
			return
		}
		if se, ok := err.(statusError); ok && se.retryAfter > wait {
			wait = min(se.retryAfter, s.o.MaxBackoff) // the receiver asked for it
		}
		s.log.Warn("alert notice not delivered; retrying", "url", redact(h.w.URL), "alert", n.Alert, "store", n.Store, "attempt", attempt+1, "in", wait, "err", err)
		jitter := time.Duration(rand.Int64N(int64(wait)/4 + 1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait + jitter):
		}
		wait = min(wait*2, s.o.MaxBackoff)
	}
}

// statusError is a receiver's answer other than 2xx, with how long its
// Retry-After header (in seconds) asked to wait.
type statusError struct {
	code       int
	retryAfter time.Duration
}

func (e statusError) Error() string { return fmt.Sprintf("receiver answered %d", e.code) }

// retryable: everything but a 4xx that another try will not change (a
// 408 or 429 may).
func retryable(err error) bool {
	if se, ok := err.(statusError); ok {
		return se.code >= 500 || se.code == http.StatusRequestTimeout || se.code == http.StatusTooManyRequests
	}
	return true
}

func (s *Sender) post(ctx context.Context, w Webhook, n Notice, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range w.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tillsync-hub")
	req.Header.Set(NoticeHeader, n.ID+" "+n.State)
	if w.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+w.Bearer)
	}
	if w.Secret != "" {
		req.Header.Set(SignatureHeader, Sign(w.Secret, body))
	}
	resp, err := s.o.Client.Do(req)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			return ue.Err // without the URL, which may hold a key
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := statusError{code: resp.StatusCode}
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
			se.retryAfter = time.Duration(n) * time.Second
		}
		return se
	}
	return nil
}

// redact leaves a URL's user info and query out of the log: either may
// carry a receiver's key.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(webhook)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}
