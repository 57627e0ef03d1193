package perf

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one line of the bench's table: a figure beside its baseline,
// measured in the same run.
type Row struct {
	// ID is the scenario's number in docs/performance.md, with a suffix
	// for its variants ("2", "2m": with Mosquitto).
	ID string `json:"id"`
	// What the figure is.
	What string `json:"what"`
	// Figure and Baseline, for people ("52,300 tx/s", "p99 4.1 ms").
	Figure   string `json:"figure"`
	Baseline string `json:"baseline,omitempty"`
	// Ratio is figure over baseline (0: no baseline).
	Ratio float64 `json:"ratio,omitempty"`
	// Target is what the figure should meet, and Met whether it did.
	Target string `json:"target"`
	Met    bool   `json:"met"`
	// NoTarget marks a row that only informs: its Target says why.
	NoTarget bool `json:"no_target,omitempty"`
	// Note says what else the run saw (duplicates, drops, the profile's
	// top entry…).
	Note string `json:"note,omitempty"`
}

// PrintTable writes rows as an aligned table.
func PrintTable(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tscenario\tfigure\tbaseline\tratio\ttarget\tmet")
	for _, r := range rows {
		ratio, met := r.cells("NO")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.What, r.Figure, r.Baseline, ratio, r.Target, met)
	}
	tw.Flush()
	for _, r := range rows {
		if r.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.ID, r.Note)
		}
	}
}

// MarkdownTable writes rows as a Markdown table, for docs/performance.md.
func MarkdownTable(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| # | scenario | figure | baseline | ratio | target | met |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, r := range rows {
		ratio, met := r.cells("**no**")
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", r.ID, r.What, r.Figure, r.Baseline, ratio, r.Target, met)
	}
}

// cells are the ratio and met columns of r; missed is what a target
// missed says.
func (r Row) cells(missed string) (ratio, met string) {
	if r.Ratio != 0 {
		ratio = fmt.Sprintf("%.2f×", r.Ratio)
	}
	switch {
	case r.NoTarget:
		return ratio, "—"
	case !r.Met:
		return ratio, missed
	}
	return ratio, "yes"
}

// rate formats a throughput.
func rate(perSec float64) string { return thousands(int64(perSec+0.5)) + " tx/s" }

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// thousands formats n with a comma every three digits.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
