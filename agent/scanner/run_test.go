//go:build unix

package scanner_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent/scanner"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/testkit"
)

const waitTimeout = 5 * time.Second

type stateChange struct {
	connected bool
	err       error
}

// running is one scanner.Run in the background, recording what it reports.
type running struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan error

	mu       sync.Mutex
	scans    []scanner.Scan
	states   []stateChange
	status   scanner.Status // the last one reported
	statuses int            // OnStatus calls
}

// startRun starts scanner.Run with opts, filling in the callbacks (after
// recording a scan, opts.OnScan is still called if set), a test logger and
// short timeouts. Run is stopped when the test ends, before the
// pseudo-terminals opened earlier are closed (cleanups run last-in first-out).
func startRun(t *testing.T, opts scanner.Options) *running {
	t.Helper()
	r := &running{t: t, done: make(chan error, 1)}
	onScan := opts.OnScan
	opts.OnScan = func(s scanner.Scan) {
		r.mu.Lock()
		r.scans = append(r.scans, s)
		r.mu.Unlock()
		if onScan != nil {
			onScan(s)
		}
	}
	opts.OnState = func(connected bool, err error) {
		r.mu.Lock()
		r.states = append(r.states, stateChange{connected, err})
		r.mu.Unlock()
	}
	opts.OnStatus = func(st scanner.Status) {
		r.mu.Lock()
		r.status = st
		r.statuses++
		r.mu.Unlock()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = 20 * time.Millisecond
	}
	if opts.Reopen == 0 {
		opts.Reopen = 20 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- scanner.Run(ctx, opts) }()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels Run and waits for it, failing unless it returns nil within a
// second.
func (r *running) stop() {
	r.t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			r.t.Errorf("Run returned %v after cancel, want nil", err)
		}
		if ok {
			close(r.done) // later stops see a closed channel
		}
	case <-time.After(time.Second):
		r.t.Fatal("Run did not return within 1s of cancel")
	}
}

// waitConnected waits until the port has been opened n times in all.
// Writing to the master only after that matters: go.bug.st/serial puts the
// tty in raw mode when it opens it, and bytes that arrive before are cooked
// by the line discipline (CR turned into LF, echo, canonical buffering).
func (r *running) waitConnected(n int) {
	r.t.Helper()
	testkit.WaitFor(r.t, waitTimeout, fmt.Sprintf("port opened %d time(s)", n), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		c := 0
		for _, s := range r.states {
			if s.connected {
				c++
			}
		}
		return c >= n
	})
}

// waitLost waits for the n-th report of a lost port and returns its error.
func (r *running) waitLost(n int) error {
	r.t.Helper()
	var err error
	testkit.WaitFor(r.t, waitTimeout, fmt.Sprintf("port lost %d time(s)", n), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		c := 0
		for _, s := range r.states {
			if !s.connected && s.err != nil {
				if c++; c == n {
					err = s.err
					return true
				}
			}
		}
		return false
	})
	return err
}

// waitScans waits for n scans in all and returns them.
func (r *running) waitScans(n int) []scanner.Scan {
	r.t.Helper()
	testkit.WaitFor(r.t, waitTimeout, fmt.Sprintf("%d scan(s)", n), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.scans) >= n
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.scans)
}

// lastStatus returns the last Status reported through OnStatus.
func (r *running) lastStatus() scanner.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

func (r *running) stateLog() []stateChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.states)
}

func write(t *testing.T, f *os.File, chunks ...[]byte) {
	t.Helper()
	for _, c := range chunks {
		if _, err := f.Write(c); err != nil {
			t.Fatalf("write to pty master: %v", err)
		}
	}
}

// memberIDs maps scans to (symbology, member id) strings, failing on a scan
// that carries no member id.
func memberIDs(t *testing.T, scans []scanner.Scan) []string {
	t.Helper()
	var out []string
	for _, s := range scans {
		id, err := scanner.MemberID(s, scanner.CheckNone)
		if err != nil {
			t.Fatalf("scan %+v: %v", s, err)
		}
		out = append(out, s.Symbology+" "+id)
	}
	return out
}

func TestRunReadsMemberIDs(t *testing.T) {
	prefixes := []string{"", "]E0", "]C0", "]Q1", "]d1"}
	suffixes := map[string]string{"CR": "\r", "LF": "\n", "CRLF": "\r\n", "TAB": "\t"}
	suffixNames := []string{"CR", "LF", "CRLF", "TAB"}

	// One scan for every prefix × suffix; every third padded with spaces,
	// which MemberID trims.
	var scans [][]byte
	var want []string
	for i, p := range prefixes {
		for j, sn := range suffixNames {
			id := fmt.Sprintf("M-%d%d.%s_x", i, j, sn)
			data := id
			if (i*len(suffixNames)+j)%3 == 0 {
				data = "  " + id + " "
			}
			scans = append(scans, []byte(p+data+suffixes[sn]))
			want = append(want, strings.TrimPrefix(p, "]")+" "+id)
		}
	}
	stream := bytes.Join(scans, nil)

	chunkings := []struct {
		name   string
		chunks func() [][]byte
	}{
		{"one write per scan", func() [][]byte { return scans }},
		{"all scans in one write", func() [][]byte { return [][]byte{stream} }},
		{"byte by byte", func() [][]byte { return bytewise(string(stream)) }},
		{"random splits", func() [][]byte {
			rng := rand.New(rand.NewPCG(1, 2))
			var out [][]byte
			for rest := stream; len(rest) > 0; {
				n := 1 + rng.IntN(min(len(rest), 17))
				out = append(out, rest[:n])
				rest = rest[n:]
			}
			return out
		}},
	}
	for _, c := range chunkings {
		t.Run(c.name, func(t *testing.T) {
			pty := testkit.OpenPTY(t)
			at := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
			r := startRun(t, scanner.Options{Port: pty.Name, Clock: clock.NewFake(at)})
			r.waitConnected(1)
			write(t, pty.Master, c.chunks()...)
			got := r.waitScans(len(want))
			if ids := memberIDs(t, got); !slices.Equal(ids, want) {
				t.Errorf("member ids:\n got %q\nwant %q", ids, want)
			}
			for _, s := range got {
				if !s.At.Equal(at) {
					t.Errorf("scan At = %v, want %v from Options.Clock", s.At, at)
				}
			}
			// Nothing more trickles in (e.g. an empty scan from CRLF).
			write(t, pty.Master, []byte("]E0END\r"))
			if got := r.waitScans(len(want) + 1); len(got) != len(want)+1 || got[len(want)].Data != "END" {
				t.Errorf("after the table, scans = %+v, want exactly one more, END", got[len(want):])
			}
		})
	}
}

func TestRunDiscardsOversizeFrames(t *testing.T) {
	pty := testkit.OpenPTY(t)
	logs := new(testkit.Buffer)
	r := startRun(t, scanner.Options{
		Port:   pty.Name,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	r.waitConnected(1)
	write(t, pty.Master, []byte(strings.Repeat("9", scanner.MaxFrame+100)+"\r\n]E0OK-1\r"))
	got := r.waitScans(1)
	if ids := memberIDs(t, got); !slices.Equal(ids, []string{"E0 OK-1"}) {
		t.Errorf("member ids = %q, want only E0 OK-1", ids)
	}
	r.stop()
	if !strings.Contains(logs.String(), "level=WARN msg=\"scanner frame too long") {
		t.Errorf("no WARN about the oversize frame in the log:\n%s", logs)
	}
}

// Member ids may be personal: they must not reach the log at any level.
func TestRunDoesNotLogScannedData(t *testing.T) {
	pty := testkit.OpenPTY(t)
	logs := new(testkit.Buffer)
	r := startRun(t, scanner.Options{
		Port:   pty.Name,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	r.waitConnected(1)
	write(t, pty.Master, []byte("]Q1SECRET-4711\r\n"))
	r.waitScans(1)
	r.stop()
	out := logs.String()
	if strings.Contains(out, "SECRET") || strings.Contains(out, "4711") {
		t.Errorf("scanned data in the log:\n%s", out)
	}
	if !strings.Contains(out, `"msg":"scan","port":"`+pty.Name+`","symbology":"Q1","bytes":11`) {
		t.Errorf("no DEBUG record with symbology and length:\n%s", out)
	}
}

func TestRunReopens(t *testing.T) {
	// The port is a symlink, as /dev/serial/by-id/… is on a till: the test
	// "replugs" the scanner by pointing the link at a second pseudo-terminal.
	relink := func(t *testing.T, link, target string) {
		t.Helper()
		tmp := link + ".tmp"
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil { // atomic: the link never disappears
			t.Fatal(err)
		}
	}

	t.Run("read error when the device hangs up", func(t *testing.T) {
		first, second := testkit.OpenPTY(t), testkit.OpenPTY(t)
		link := filepath.Join(t.TempDir(), "scanner")
		relink(t, link, first.Name)
		r := startRun(t, scanner.Options{Port: link})
		r.waitConnected(1)
		write(t, first.Master, []byte("]E0FIRST\r"))
		r.waitScans(1)

		relink(t, link, second.Name)
		write(t, first.Master, []byte("]E0CUT-SHO")) // unfinished: must not be glued to the next scan
		first.Master.Close()                         // the scanner is unplugged
		// Linux reports the hang-up as a zero-length read (go.bug.st/serial
		// turns it into "Port has been closed") or as EIO.
		if err := r.waitLost(1); !strings.Contains(err.Error(), "hung up") {
			t.Errorf("lost with %q, want it to say the device hung up", err)
		}

		r.waitConnected(2)
		write(t, second.Master, []byte("RT\r]C0SECOND\r"))
		got := r.waitScans(3)
		if ids := memberIDs(t, got); !slices.Equal(ids, []string{"E0 FIRST", " RT", "C0 SECOND"}) {
			t.Errorf("member ids = %q", ids)
		}
	})

	t.Run("device node vanishes", func(t *testing.T) {
		first, second := testkit.OpenPTY(t), testkit.OpenPTY(t)
		link := filepath.Join(t.TempDir(), "scanner")
		relink(t, link, first.Name)
		r := startRun(t, scanner.Options{Port: link})
		r.waitConnected(1)

		// The pty itself stays up, so reads only time out: Run must notice
		// the missing node by itself.
		if err := os.Remove(link); err != nil {
			t.Fatal(err)
		}
		err := r.waitLost(1)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("lost with %v, want an error wrapping fs.ErrNotExist", err)
		}

		// Reopening fails while the link is missing; that is not reported
		// again through OnState.
		relink(t, link, second.Name)
		r.waitConnected(2)
		write(t, second.Master, []byte("]E0BACK\r"))
		if ids := memberIDs(t, r.waitScans(1)); !slices.Equal(ids, []string{"E0 BACK"}) {
			t.Errorf("member ids = %q", ids)
		}
		states := r.stateLog()
		if len(states) != 3 {
			t.Errorf("states = %+v, want opened, lost, opened", states)
		}
	})

	t.Run("scanner plugged in after start", func(t *testing.T) {
		pty := testkit.OpenPTY(t)
		link := filepath.Join(t.TempDir(), "scanner")
		r := startRun(t, scanner.Options{Port: link})
		err := r.waitLost(1) // the first failed open is reported
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("first open failed with %v, want an error wrapping fs.ErrNotExist", err)
		}
		relink(t, link, pty.Name)
		r.waitConnected(1)
		write(t, pty.Master, []byte("]E0LATE\r"))
		if ids := memberIDs(t, r.waitScans(1)); !slices.Equal(ids, []string{"E0 LATE"}) {
			t.Errorf("member ids = %q", ids)
		}
	})
}

func TestRunReturnsOnCancel(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T) (scanner.Options, func(r *running))
	}{
		{"while reading", func(t *testing.T) (scanner.Options, func(*running)) {
			pty := testkit.OpenPTY(t)
			// The default read timeout: cancel must still land within a second.
			return scanner.Options{Port: pty.Name, ReadTimeout: scanner.DefaultReadTimeout},
				func(r *running) { r.waitConnected(1) }
		}},
		{"while waiting to reopen", func(t *testing.T) (scanner.Options, func(*running)) {
			return scanner.Options{Port: filepath.Join(t.TempDir(), "absent"), Reopen: time.Hour},
				func(r *running) { r.waitLost(1) }
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts, ready := c.setup(t)
			r := startRun(t, opts)
			ready(r)
			r.stop() // fails unless Run returns nil within a second
			if states := r.stateLog(); states[len(states)-1].connected {
				t.Errorf("last state reported is connected: %+v", states)
			}
		})
	}

	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() {
			done <- scanner.Run(ctx, scanner.Options{Port: "/nonexistent", OnScan: func(scanner.Scan) {}})
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(time.Second):
			t.Fatal("Run did not return within 1s")
		}
	})
}

func TestRunRejectsUnusableOptions(t *testing.T) {
	onScan := func(scanner.Scan) {}
	cases := []struct {
		name string
		opts scanner.Options
	}{
		{"empty port", scanner.Options{OnScan: onScan}},
		{"bad usb match", scanner.Options{Match: scanner.USBMatch{VID: "c2e", PID: "0b61"}, OnScan: onScan}},
		{"nil OnScan", scanner.Options{Port: "/dev/ttyACM0"}},
		{"negative baud", scanner.Options{Port: "/dev/ttyACM0", Baud: -1, OnScan: onScan}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A live context: Run must return at once on its own.
			err := scanner.Run(context.Background(), c.opts)
			if err == nil {
				t.Fatal("Run = nil, want an error")
			}
			t.Log(err)
		})
	}
}
