// Package httpx is the HTTP plumbing the agent's POS API and the hub's
// operator API share: serving with a clean stop, JSON answers, the one error
// body ({"error":{"code","message"}}), and 404/405 answers that keep that
// shape — for paths that are not canonical too (Canonical).
package httpx

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

// HTTP-level codes, besides protocol's.
const (
	CodeNotFound         protocol.Code = "not_found"          // no such endpoint
	CodeMethodNotAllowed protocol.Code = "method_not_allowed" // wrong HTTP method
	CodeBadRequest       protocol.Code = "bad_request"        // a request the API cannot read: its body, a header or a query parameter
	CodeShuttingDown     protocol.Code = "shutting_down"      // the server is stopping
)

// WriteJSON answers status with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error struct {
		Code    protocol.Code `json:"code"`
		Message string        `json:"message"`
	} `json:"error"`
}

// WriteError answers status with an ErrorBody.
func WriteError(w http.ResponseWriter, status int, code protocol.Code, msg string) {
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, msg
	WriteJSON(w, status, b)
}

// Routes registers each "METHOD /path" pattern on mux, answers any other
// method on those paths with 405 (and an Allow header), and anything else
// with 404 — both in the error body, never Go's plain-text defaults. Serve
// mux behind Canonical, or paths that are not canonical get the mux's
// redirects.
func Routes(mux *http.ServeMux, routes map[string]http.HandlerFunc) {
	allow := map[string]string{}
	for pattern, h := range routes {
		mux.HandleFunc(pattern, h)
		var method, path string
		fmt.Sscan(pattern, &method, &path)
		if allow[path] != "" {
			allow[path] += ", "
		}
		allow[path] += method
		if method == http.MethodGet {
			allow[path] += ", HEAD"
		}
	}
	for path, methods := range allow {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", methods)
			WriteError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, r.Method+" is not allowed on "+r.URL.EscapedPath()+"; use "+methods)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusNotFound, CodeNotFound, "no such endpoint: "+r.Method+" "+r.URL.EscapedPath())
	})
}

// Canonical answers a request whose path is not canonical — an empty
// segment ("//"), a "." or ".." segment — with 404 not_found in the error
// body, and passes every other request to h. Without it http.ServeMux
// answers such a request with a redirect to the cleaned path: an HTML body
// of Go's instead of the API's, and for a POST a new target the client never
// named. No route needs such a segment: "." and ".." are never ids
// (protocol.ValidID), and a client escapes each path segment it builds.
func Canonical(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !IsCanonical(r) {
			WriteError(w, http.StatusNotFound, CodeNotFound, "no such endpoint: "+r.Method+" "+r.URL.EscapedPath()+" (a path starts with / and has no empty, . or .. segment)")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// IsCanonical reports whether r's path is one http.ServeMux serves as it
// is, rather than redirecting to a cleaned path: what Canonical passes on.
func IsCanonical(r *http.Request) bool {
	if r.Method == http.MethodConnect {
		return true // the mux does not clean CONNECT paths
	}
	p := r.URL.EscapedPath()
	if p == "" || p[0] != '/' {
		return false
	}
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np == p
}

// Serve serves h on l until ctx is done. Requests run under a context that
// is cancelled when the server stops, so a handler waiting on something (a
// burn waiting for the hub) answers at once; Serve returns only after every
// handler has returned, so the caller may then close what they use.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	reqCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	var (
		mu       sync.RWMutex
		stopping bool
		inflight sync.WaitGroup
	)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.RLock()
			if stopping {
				mu.RUnlock()
				WriteError(w, http.StatusServiceUnavailable, CodeShuttingDown, "the server is stopping; try again shortly")
				return
			}
			inflight.Add(1)
			mu.RUnlock()
			defer inflight.Done()
			h.ServeHTTP(w, r)
		}),
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("serve %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	cancelRequests()
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	srv.Close()
	mu.Lock()
	stopping = true // no handler starts after this; Wait below sees every one
	mu.Unlock()
	inflight.Wait()
	return err
}
