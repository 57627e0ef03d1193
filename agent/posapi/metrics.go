package posapi

// The POS API's part in the agent's Prometheus metrics: the requests it
// answered, by route and status, and GET /metrics itself (Options.Metrics),
// served like every other route: on the loopback listener, behind the
// shared secret when one is set. /metrics is not in openapi.yaml: it is
// for a scraper, not for the POS.

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/tillsync/tillsync/internal/httpx"
)

// RouteOther is the route of requests no route of the API matched.
const RouteOther = "other"

// RequestKey is one series of Requests: the route's pattern (e.g.
// "POST /v1/earn", or RouteOther) and the HTTP status answered.
type RequestKey struct {
	Route  string
	Status string
}

// Requests counts the POS API's requests by route and status; its zero
// value is ready. The keys are bounded: the routes are the API's, and a
// status outside 100-599 counts as "other".
type Requests struct {
	mu sync.Mutex
	n  map[RequestKey]int64
}

// Snapshot returns the counts.
func (q *Requests) Snapshot() map[RequestKey]int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make(map[RequestKey]int64, len(q.n))
	for k, v := range q.n {
		out[k] = v
	}
	return out
}

func (q *Requests) add(route string, status int) {
	s := RouteOther
	if status >= 100 && status <= 599 {
		s = strconv.Itoa(status)
	}
	q.mu.Lock()
	if q.n == nil {
		q.n = map[RequestKey]int64{}
	}
	q.n[RequestKey{route, s}]++
	q.mu.Unlock()
}

// instrument registers GET /metrics on mux when o.Metrics is set, and
// counts h's requests in o.Requests, when set, by the pattern of mux's
// route (RouteOther for the catch-alls).
func (o Options) instrument(mux *http.ServeMux, known map[string]http.HandlerFunc, h http.Handler) http.Handler {
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	if o.Requests == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		if _, ok := known[pattern]; !ok && pattern != "GET /metrics" || !httpx.IsCanonical(r) {
			pattern = RouteOther
		}
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		o.Requests.add(pattern, sw.status)
	})
}

// statusWriter notes the status written; Unwrap keeps
// http.ResponseController's Flush and deadlines working (the scan stream).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
