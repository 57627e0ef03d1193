package httpx

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRoutesAnswerUnknownPathsAndMethodsInTheErrorBody(t *testing.T) {
	mux := http.NewServeMux()
	Routes(mux, map[string]http.HandlerFunc{
		"GET /v1/things/{id}": func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, 200, map[string]string{"id": r.PathValue("id")})
		},
		"POST /v1/things": func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, 201, nil) },
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, c := range []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/v1/things/a", 200, "", ""},
		{"HEAD", "/v1/things/a", 200, "", ""},
		{"POST", "/v1/things", 201, "", ""},
		{"DELETE", "/v1/things/a", 405, "method_not_allowed", "GET, HEAD"},
		{"GET", "/v1/things", 405, "method_not_allowed", "POST"},
		{"GET", "/v1/nope%0Ax", 404, "not_found", ""},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b ErrorBody
		json.NewDecoder(resp.Body).Decode(&b)
		resp.Body.Close()
		if resp.StatusCode != c.status || string(b.Error.Code) != c.code || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d %q Allow %q, want %d %q Allow %q", c.method, c.path, resp.StatusCode, b.Error.Code, resp.Header.Get("Allow"), c.status, c.code, c.allow)
		}
		if strings.Contains(b.Error.Message, "\n") {
			t.Errorf("%s %s: message is not one line: %q", c.method, c.path, b.Error.Message)
		}
	}
}

// TestCanonicalRefusesWhatTheMuxWouldRedirect: a path with an empty, . or
// .. segment gets the API's 404 body, not the mux's redirect (for a POST,
// to an endpoint the client never named); an escaped . reaches its route.
func TestCanonicalRefusesWhatTheMuxWouldRedirect(t *testing.T) {
	mux := http.NewServeMux()
	Routes(mux, map[string]http.HandlerFunc{
		"GET /v1/things/{id}": func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, 200, map[string]string{"id": r.PathValue("id")})
		},
		"POST /v1/things": func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, 201, nil) },
	})
	srv := httptest.NewServer(Canonical(mux))
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct {
		method, path string
		status       int
		code, id     string
	}{
		{"GET", "/v1/things/a", 200, "", "a"},
		{"GET", "/v1/things/%2E", 200, "", "."},
		{"GET", "/v1/things/%2E%2E", 200, "", ".."},
		{"GET", "/v1/things/.", 404, "not_found", ""},
		{"GET", "/v1//things/a", 404, "not_found", ""},
		{"GET", "/v1/things/a/", 404, "not_found", ""},
		{"POST", "/v1/x/../things", 404, "not_found", ""},
		{"POST", "//v1/things", 404, "not_found", ""},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var b ErrorBody
		var ok map[string]string
		if c.status == 200 {
			json.Unmarshal(body, &ok)
		} else {
			json.Unmarshal(body, &b)
		}
		if resp.StatusCode != c.status || string(b.Error.Code) != c.code || ok["id"] != c.id || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s %q, want %d %q id %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, c.status, c.code, c.id)
		}
	}
}

// TestServeLetsWaitingHandlersAnswer: stopping cancels the requests'
// context, and Serve returns only after the handler answered.
func TestServeLetsWaitingHandlersAnswer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var finished atomic.Bool
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done() // waits for something that will not come in time
		time.Sleep(50 * time.Millisecond)
		WriteJSON(w, 200, map[string]string{"status": "declined"})
		finished.Store(true)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, h) }()
	answer := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + l.Addr().String() + "/")
		if err != nil {
			answer <- err.Error()
			return
		}
		defer resp.Body.Close()
		var b map[string]string
		json.NewDecoder(resp.Body).Decode(&b)
		answer <- b["status"]
	}()
	<-started
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if !finished.Load() {
		t.Fatal("Serve returned before the handler finished")
	}
	if got := <-answer; got != "declined" {
		t.Fatalf("the waiting request got %q, want its answer", got)
	}
}
