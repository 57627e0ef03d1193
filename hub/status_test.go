package hub_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/dashboard"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// TestTillStatus: the hub takes a till's status from its status topic and
// shows it in GET /v1/stores; an old session's will arriving after the new
// session's online status (the late will) leaves the till online, and the
// hub puts the newest status back as the retained one.
func TestTillStatus(t *testing.T) {
	r := start(t, hub.Options{Seed: seed()})
	topic, _ := protocol.TerminalTopic("s1", "t1", protocol.ChannelStatus)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(r.mqttURL).SetClientID(protocol.AgentClientID("s1", "t1")).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	publish := func(session uint64, online bool) {
		t.Helper()
		yes, off := true, int64(1500)
		s := protocol.TerminalStatus{Version: protocol.UnsealedVersion, Store: "s1", Terminal: "t1", Session: session, Online: online,
			AgentVersion: "2.0.1", ScannerConnected: &yes, ClockOffsetMS: &off, OfflinePoints: 40, OfflineBurns: 1, SentAt: r.clock.Now()}
		p, _ := protocol.Encode(&s)
		if tok := c.Publish(topic, 1, true, p); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	agentStatus := func() *protocol.TerminalStatus {
		t.Helper()
		res := send(t, http.DefaultClient, r.token, "GET", r.httpURL+"/v1/stores", "")
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var out struct {
			Stores []struct {
				Store     string `json:"store"`
				Terminals []struct {
					Terminal    string                   `json:"terminal"`
					AgentStatus *protocol.TerminalStatus `json:"agent_status"`
				} `json:"terminals"`
			} `json:"stores"`
		}
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("GET /v1/stores: %v\n%s", err, b)
		}
		for _, s := range out.Stores {
			for _, tm := range s.Terminals {
				if s.Store == "s1" && tm.Terminal == "t1" {
					return tm.AgentStatus
				}
			}
		}
		return nil
	}
	publish(5, true)
	testkit.WaitFor(t, wait, "session 5 online in /v1/stores", func() bool {
		s := agentStatus()
		return s != nil && s.Session == 5 && s.Online
	})
	if s := agentStatus(); s.AgentVersion != "2.0.1" || s.ClockOffsetMS == nil || *s.ClockOffsetMS != 1500 || s.MAC != "" {
		t.Fatalf("agent status %+v", s)
	}
	// The dashboard shows what the till reported.
	jar, _ := cookiejar.New(nil)
	dc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := dc.PostForm(r.httpURL+"/dashboard/login", url.Values{"token": {r.token}}); err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("dashboard sign-in: %v %v", resp, err)
	}
	testkit.WaitFor(t, wait, "the dashboard to show s1's version and scanner", func() bool {
		r.clock.Advance(time.Second) // past the view's cache
		resp, err := dc.Get(r.httpURL + "/dashboard/api/snapshot")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var snap dashboard.Snapshot
		json.NewDecoder(resp.Body).Decode(&snap)
		for _, st := range snap.Stores {
			if st.Store == "s1" {
				return slices.Contains(st.Versions, "2.0.1") && st.Scanners == 1 && st.ScannersOK == 1
			}
		}
		return false
	})

	// The old session's will, late; then a status of the current session,
	// which the broker delivers after it: once that is in, the will was
	// handled.
	publish(4, false)
	yes := true
	s5 := protocol.TerminalStatus{Version: protocol.UnsealedVersion, Store: "s1", Terminal: "t1", Session: 5, Online: true,
		AgentVersion: "2.0.2", ScannerConnected: &yes, SentAt: r.clock.Now()}
	p, _ := protocol.Encode(&s5)
	if tok := c.Publish(topic, 1, true, p); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	testkit.WaitFor(t, wait, "the next status of session 5", func() bool { s := agentStatus(); return s != nil && s.AgentVersion == "2.0.2" })
	if s := agentStatus(); !s.Online || s.Session != 5 {
		t.Fatalf("after a late will: %+v, want session 5 online", s)
	}
	// The will of the current session marks it offline.
	publish(5, false)
	testkit.WaitFor(t, wait, "session 5 offline", func() bool { s := agentStatus(); return s != nil && !s.Online })
	if st := r.hub.Stats(); st.Refused != 0 {
		t.Errorf("stats %+v", st)
	}
}
