package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/dashboard"
	"github.com/tillsync/tillsync/protocol"
)

type event struct {
	name string
	data string
}

// stream opens the live stream at path and hands its events over a
// channel, closed when the stream ends.
func (f *fixture) stream(c *http.Client, path string) (<-chan event, *http.Response) {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f.t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+path, nil)
	resp, err := c.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	ch := make(chan event, 100)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[len("data: "):]
			case line == "" && ev.name != "":
				ch <- ev
				ev = event{}
			}
		}
	}()
	return ch, resp
}

// next returns the next event, failing after wait.
func next(t *testing.T, ch <-chan event) event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(wait):
		t.Fatal("no event")
	}
	return event{}
}

// until returns the next event called name, skipping others.
func until(t *testing.T, ch <-chan event, name string) event {
	t.Helper()
	for {
		if ev := next(t, ch); ev.name == name {
			return ev
		}
	}
}

func quiet(t *testing.T, ch <-chan event, d time.Duration) {
	t.Helper()
	select {
	case ev := <-ch:
		t.Fatalf("an event while nothing changed: %s %s", ev.name, ev.data)
	case <-time.After(d):
	}
}

// TestEvents: the stream sends every part at once, then only what
// changed: a till going offline reaches the page within a tick, and an
// unchanged page costs nothing; it ends when the session does.
func TestEvents(t *testing.T) {
	f := newFixture(t, func(o *dashboard.Options) { o.Tick = 20 * time.Millisecond }, false)
	c := f.signedIn(f.operator)
	ch, resp := f.stream(c, "/dashboard/api/events")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("stream: %d %v", resp.StatusCode, resp.Header)
	}
	var got []string
	for range 6 {
		got = append(got, next(t, ch).name)
	}
	if strings.Join(got, " ") != "session overview samples ledger stores rejections" {
		t.Fatalf("first events %v", got)
	}
	quiet(t, ch, 10*20*time.Millisecond)

	f.setConnected(protocol.AgentClientID("s1", "t1"), protocol.AgentClientID("s1", "t2"))
	if ev := next(t, ch); ev.name != "overview" {
		t.Fatalf("after a change: %s", ev.name)
	}
	ev := next(t, ch)
	if ev.name != "stores" {
		t.Fatalf("after a till left: %s, want stores (samples and the rest unchanged)", ev.name)
	}
	var stores []dashboard.StoreRow
	json.Unmarshal([]byte(ev.data), &stores)
	for _, s := range stores {
		if s.Store == "s2" && s.State != dashboard.StateOffline {
			t.Fatalf("s2 after its till left: %+v", s)
		}
	}
	quiet(t, ch, 5*20*time.Millisecond)

	// A store's stream carries its page.
	sch, _ := f.stream(c, "/dashboard/api/events?store=s1")
	var det dashboard.StoreDetail
	json.Unmarshal([]byte(until(t, sch, "store").data), &det)
	if det.Store.Store != "s1" || len(det.Terminals) != 2 || len(det.Recent) != 3 || det.Recent[0].Member == "" {
		t.Fatalf("store event %+v", det)
	}

	// Signing out ends both streams.
	req, _ := http.NewRequest("POST", f.srv.URL+"/dashboard/logout", nil)
	if r, err := c.Do(req); err != nil {
		t.Fatal(err)
	} else {
		r.Body.Close()
	}
	for _, s := range []<-chan event{ch, sch} {
		until(t, s, "signedout")
		select {
		case _, ok := <-s:
			if ok {
				t.Fatal("the stream went on after signedout")
			}
		case <-time.After(wait):
			t.Fatal("the stream did not end")
		}
	}
}

// TestEventsPartner: a partner's stream has no ledger health and only its
// own stores; another partner's store page is refused before it starts.
func TestEventsPartner(t *testing.T) {
	f := newFixture(t, func(o *dashboard.Options) { o.Tick = 20 * time.Millisecond }, false)
	c := f.signedIn(f.partner)
	ch, _ := f.stream(c, "/dashboard/api/events")
	var got []string
	for range 5 {
		ev := next(t, ch)
		got = append(got, ev.name)
		if ev.name == "stores" && (strings.Contains(ev.data, `"s2"`) || !strings.Contains(ev.data, `"s1"`)) {
			t.Errorf("partner's stores: %s", ev.data)
		}
	}
	if strings.Join(got, " ") != "session overview samples stores rejections" {
		t.Fatalf("partner's first events %v", got)
	}
	if _, resp := f.stream(c, "/dashboard/api/events?store=s2"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another partner's store stream: %d", resp.StatusCode)
	}
}
