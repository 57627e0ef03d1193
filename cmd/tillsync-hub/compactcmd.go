package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/cli"
)

// maintainGroup holds the commands that work on a stopped hub's data dir.
const maintainGroup = "maintain"

func compactCmd() *cobra.Command {
	var (
		dataDir string
		keep    bool
	)
	c := &cobra.Command{
		Use:   "compact",
		Short: "Compact a stopped hub's ledger file, giving its free space back to the disk",
		Long: `Compact the ledger file of a stopped hub, <data-dir>/ledger.db. The file
never shrinks by itself: the space that expiry, pruned token sightings and
every commit free inside it is reused, but never given back. compact copies
the live data into a new, densely packed file beside it (ledger.db.compact),
syncs it, reads it back and checks that it holds every bucket, key and value
of the ledger and passes verify, and only then renames it over ledger.db.
--keep-original keeps the ledger as it was, as ledger.db.before-compact; by
default it is removed once the copy is in its place. The new file is the live
data, bbolt's page headers and the room bbolt grows a file by (at most
16 MiB on Linux and macOS).

Run it with the hub stopped: it refuses while a hub holds the file, and a
hub cannot start while it runs. It is worth it after an expiry of old data,
and periodically when the file has grown well past its live data (it prints
both). It needs free disk space for the copy (about the live data) and takes
a while on a large ledger: it reads the ledger twice, writes the copy and
reads that twice, minutes for several GB. If it is interrupted or a check
fails, ledger.db stays as it was. A ledger that does not pass verify is left
alone, for "tillsync-hub verify --data-dir" to explain.`,
		Example: `  tillsync-hub compact --data-dir ./hub-data
  tillsync-hub compact --data-dir ./hub-data --keep-original`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if dataDir == "" {
				return cli.Usagef("no data dir; set one with --data-dir")
			}
			path := filepath.Join(dataDir, hub.LedgerFile)
			if _, err := os.Stat(path); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("no ledger in %s (%s does not exist); check --data-dir", dataDir, hub.LedgerFile)
				}
				return fmt.Errorf("ledger %s: %v", path, rootErr(err))
			}
			out := c.OutOrStdout()
			start := time.Now()
			rep, err := ledger.Compact(path, ledger.CompactOptions{
				KeepOriginal:     keep,
				Progress:         compactProgress(out, path),
				ProgressInterval: 5 * time.Second,
			})
			switch {
			case errors.Is(err, ledger.ErrLocked):
				return fmt.Errorf("ledger %s is in use by a running hub; stop the hub first, then compact", path)
			case errors.Is(err, ledger.ErrVerifyFailed):
				return fmt.Errorf("%s; see tillsync-hub verify --data-dir %s", oneLine(err.Error()), dataDir)
			case err != nil:
				return errors.New(oneLine(err.Error()))
			}
			printCompact(c, rep, time.Since(start))
			return nil
		},
	}
	c.Flags().StringVar(&dataDir, "data-dir", cli.DefaultDataDir("hub"), "the stopped hub's data dir, whose "+hub.LedgerFile+" to compact")
	c.Flags().BoolVar(&keep, "keep-original", false, "keep the ledger as it was, as "+hub.LedgerFile+ledger.BeforeCompactSuffix+" in the data dir")
	return c
}

// compactProgress prints a line as each phase of a compaction begins, and
// one for each report within a phase that counts its work.
func compactProgress(w io.Writer, path string) func(ledger.CompactProgress) {
	var last ledger.CompactPhase
	return func(p ledger.CompactProgress) {
		if p.Phase == last {
			switch {
			case p.Total > 0:
				fmt.Fprintf(w, "  %s of %s (%d%%)\n", byteSize(p.Done), byteSize(p.Total), min(99, p.Done*100/p.Total))
			case p.Done > 0:
				fmt.Fprintf(w, "  %s read\n", byteSize(p.Done))
			}
			return
		}
		last = p.Phase
		switch p.Phase {
		case ledger.PhaseScan:
			fmt.Fprintf(w, "Reading %s (%s) and summing up every bucket…\n", path, byteSize(fileBytes(path)))
		case ledger.PhaseCopy:
			fmt.Fprintf(w, "Copying its live data into %s (about %s)…\n", filepath.Base(path)+ledger.CompactSuffix, byteSize(p.Total))
		case ledger.PhaseSync:
			fmt.Fprintln(w, "Syncing the copy to disk…")
		case ledger.PhaseCheck:
			fmt.Fprintln(w, "Reading the copy back and comparing it with the ledger…")
		case ledger.PhaseVerify:
			fmt.Fprintln(w, "Verifying the copy: replaying its journal…")
		case ledger.PhaseReplace:
			fmt.Fprintf(w, "Putting the copy in the place of %s…\n", filepath.Base(path))
		}
	}
}

func printCompact(c *cobra.Command, rep ledger.CompactReport, took time.Duration) {
	out := c.OutOrStdout()
	fmt.Fprintf(out, "\nCompacted %s in %s.\n", rep.Path, roundDuration(took))
	b, a := rep.Before, rep.After
	t := newTable(c)
	t.row("  before", byteSize(b.FileBytes)+" on disk")
	saved := "nothing given back: the file was compact already"
	if d := b.FileBytes - a.FileBytes; d > 0 {
		saved = fmt.Sprintf("%s (%d%%) given back", byteSize(d), d*100/max(b.FileBytes, 1))
	}
	t.row("  after", byteSize(a.FileBytes)+" on disk; "+saved)
	t.row("  live data", fmt.Sprintf("%s of keys and values (%s in bbolt's pages)", byteSize(a.LiveBytes), byteSize(a.InuseBytes)))
	t.row("  checked", fmt.Sprintf("%s, %s keys: the same in the copy, which passes verify", count(len(a.Buckets), "bucket"), strconv.FormatInt(a.Keys, 10)))
	if rep.Kept != "" {
		t.row("  original", "kept as "+rep.Kept)
	} else {
		t.row("  original", "removed")
	}
	t.flush()
}

// byteSize says n bytes for people: 812 B, 4.2 KiB, 1.5 MiB, 3.2 GiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + [...]string{"KiB", "MiB", "GiB", "TiB"}[i]
}

func fileBytes(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// roundDuration rounds d for people: to the millisecond under a second,
// to a tenth of a second under a minute, to the second above.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}
