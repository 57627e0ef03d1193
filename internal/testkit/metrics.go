package testkit

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Metrics is a scrape of a Prometheus endpoint in the text format: each
// sample's value by its name and labels as the endpoint wrote them, e.g.
// `tillsync_hub_store_backlog{store="s1"}`.
type Metrics map[string]float64

// Scrape GETs url with an Authorization header (none when auth is empty)
// and returns the status and, for a 200, the samples.
func Scrape(t testing.TB, url, auth string) (int, Metrics) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		io.Copy(io.Discard, res.Body)
		return res.StatusCode, nil
	}
	m := Metrics{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("scrape %s: line %q", url, line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape %s: line %q: %v", url, line, err)
		}
		m[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return res.StatusCode, m
}

// Has reports whether a sample of the metric name (any labels) is there.
func (m Metrics) Has(name string) bool {
	for k := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			return true
		}
	}
	return false
}

// Count returns the number of samples of the metric name (any labels).
func (m Metrics) Count(name string) int {
	n := 0
	for k := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			n++
		}
	}
	return n
}
