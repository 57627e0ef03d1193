package perf

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Histogram is one of the hub's latency histograms as GET /metrics shows
// it: cumulative counts by upper bound.
type Histogram struct {
	Bounds []float64 // seconds, ascending, +Inf last
	Counts []float64 // cumulative
	Sum    float64
	Count  float64
}

// Quantile returns the upper bound of the bucket the q-quantile falls in
// (the histogram cannot say better).
func (h Histogram) Quantile(q float64) time.Duration {
	if h.Count == 0 {
		return 0
	}
	for i, c := range h.Counts {
		if c >= q*h.Count {
			if math.IsInf(h.Bounds[i], 1) {
				return time.Duration(math.MaxInt64)
			}
			return time.Duration(h.Bounds[i] * float64(time.Second))
		}
	}
	return 0
}

// Mean is the histogram's mean.
func (h Histogram) Mean() time.Duration {
	if h.Count == 0 {
		return 0
	}
	return time.Duration(h.Sum / h.Count * float64(time.Second))
}

// Sub returns h less an earlier reading of it.
func (h Histogram) Sub(e Histogram) Histogram {
	if len(e.Counts) != len(h.Counts) {
		return h
	}
	out := Histogram{Bounds: h.Bounds, Sum: h.Sum - e.Sum, Count: h.Count - e.Count}
	for i := range h.Counts {
		out.Counts = append(out.Counts, h.Counts[i]-e.Counts[i])
	}
	return out
}

// Metrics reads the hub's histograms named in names from GET /metrics.
func (h *Hub) Metrics(ctx context.Context, names ...string) (map[string]Histogram, error) {
	resp, err := h.get(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	type bucket struct{ le, n float64 }
	buckets := map[string][]bucket{}
	out := map[string]Histogram{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range names {
			rest, ok := strings.CutPrefix(line, name)
			if !ok {
				continue
			}
			fields := strings.Fields(rest)
			if len(fields) < 2 {
				continue
			}
			v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
			if err != nil {
				continue
			}
			hs := out[name]
			switch {
			case strings.HasPrefix(rest, "_bucket{"):
				i := strings.Index(rest, `le="`)
				if i < 0 {
					continue
				}
				leText := rest[i+4:]
				leText = leText[:strings.IndexByte(leText, '"')]
				le, err := strconv.ParseFloat(leText, 64)
				if err != nil {
					continue
				}
				buckets[name] = append(buckets[name], bucket{le, v})
			case strings.HasPrefix(rest, "_sum"):
				hs.Sum = v
			case strings.HasPrefix(rest, "_count"):
				hs.Count = v
			}
			out[name] = hs
		}
	}
	for name, bs := range buckets {
		sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
		hs := out[name]
		for _, b := range bs {
			hs.Bounds = append(hs.Bounds, b.le)
			hs.Counts = append(hs.Counts, b.n)
		}
		out[name] = hs
	}
	return out, sc.Err()
}

// The hub's histograms the bench reads.
const (
	metricAck    = "tillsync_hub_ack_latency_seconds"
	metricCommit = "tillsync_hub_ledger_commit_seconds"
)

// hubSide describes what the hub's own histograms saw between two
// readings: its part of a round trip, and its commits.
func hubSide(before, after map[string]Histogram) string {
	ack := after[metricAck].Sub(before[metricAck])
	com := after[metricCommit].Sub(before[metricCommit])
	return fmt.Sprintf("at the hub: arrival → acks out p50 %s, p99 %s; %s commits, mean %s, p99 %s",
		ack.upTo(0.5), ack.upTo(0.99), thousands(int64(com.Count)), ms(com.Mean()), com.upTo(0.99))
}

// upTo says where the q-quantile lies: at most a bucket's bound, or past
// the last finite one (the histogram cannot say by how much).
func (h Histogram) upTo(q float64) string {
	d := h.Quantile(q)
	if d != time.Duration(math.MaxInt64) {
		return "≤ " + ms(d)
	}
	last := 0.0
	for _, b := range h.Bounds {
		if !math.IsInf(b, 1) {
			last = max(last, b)
		}
	}
	return "> " + ms(time.Duration(last*float64(time.Second)))
}
