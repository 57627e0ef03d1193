package posapi

import (
	_ "embed"
	"net/http"
)

// Spec is the API's OpenAPI 3 description, served at GET /v1/openapi.yaml.
// A test checks it against the handlers and the request and answer types,
// so it cannot drift from them.
//
//go:embed openapi.yaml
var Spec []byte

func serveSpec(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(Spec)
}
