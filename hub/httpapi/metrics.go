package httpapi

import (
	"net/http"

	"github.com/tillsync/tillsync/internal/httpx"
)

// metrics serves GET /metrics: the hub's Prometheus metrics (Options.Metrics).
// Like every route but the liveness check it wants an API token (a
// scraper's bearer_token), and a read-only one does: a partner's is
// refused, as the per-store gauges name every partner's stores.
func (a *api) metrics(w http.ResponseWriter, r *http.Request) {
	if a.o.Metrics == nil {
		httpx.WriteError(w, http.StatusNotFound, httpx.CodeNotFound, "this hub serves no metrics")
		return
	}
	a.o.Metrics.ServeHTTP(w, r)
}
