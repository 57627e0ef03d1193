//go:build unix

package scanner_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tillsync/tillsync/internal/testkit"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/creack/pty"

	"github.com/tillsync/tillsync/agent/scanner"
)

// fakeUSB stands in for the enumerator: it lists the ports the test sets,
// so a pseudo-terminal can carry a scanner's USB identity.
type fakeUSB struct {
	mu    sync.Mutex
	ports []scanner.PortInfo
}

func (f *fakeUSB) set(ports ...scanner.PortInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ports = slices.Clone(ports)
}

func (f *fakeUSB) Enumerate() ([]scanner.PortInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ports), nil
}

// xenon is the scanner of these tests: a Honeywell (Metrologic VID) with a
// serial number.
var xenon = scanner.USBMatch{VID: "0c2e", PID: "0b61", Serial: "22143B0042"}

func usbPort(name string, m scanner.USBMatch) scanner.PortInfo {
	return scanner.PortInfo{Name: name, USB: true, VID: m.VID, PID: m.PID, SerialNumber: m.Serial,
		Manufacturer: "Honeywell", Product: "Xenon 1900"}
}

// plug is a pseudo-terminal the test closes when it likes: unplugging it
// hangs up the side Run has open, as pulling a USB scanner does. (Those of
// testkit.OpenPTY live until the test ends; 100 replugs need them gone.)
type plug struct {
	master, slave *os.File
	name          string
}

func plugIn(t *testing.T) *plug {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	p := &plug{master: m, slave: s, name: s.Name()}
	t.Cleanup(p.unplug)
	return p
}

func (p *plug) unplug() {
	p.master.Close()
	p.slave.Close()
}

// relink points link at target atomically, as udev moves a by-id link.
func relink(t *testing.T, link, target string) {
	t.Helper()
	tmp := link + ".tmp"
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

func TestRunChoosesScannerByUSB(t *testing.T) {
	target, twin, ftdi, plain := plugIn(t), plugIn(t), plugIn(t), plugIn(t)
	other := xenon
	other.Serial = "OTHER-SERIAL"
	usb := &fakeUSB{}
	usb.set(
		scanner.PortInfo{Name: plain.name}, // a port without USB details
		scanner.PortInfo{Name: ftdi.name, USB: true, VID: "0403", PID: "6001"},
		usbPort(twin.name, other),
		usbPort(target.name, xenon),
	)

	t.Run("by VID, PID and serial number", func(t *testing.T) {
		r := startRun(t, scanner.Options{Match: xenon, Enumerate: usb.Enumerate})
		r.waitConnected(1)
		write(t, target.master, []byte("]E0FOUND\r"))
		if ids := memberIDs(t, r.waitScans(1)); !slices.Equal(ids, []string{"E0 FOUND"}) {
			t.Errorf("member ids = %q", ids)
		}
		st := r.lastStatus()
		if st.Port != target.name || st.USB != xenon.String() || !st.Connected || st.Scans != 1 || st.LastScan.IsZero() {
			t.Errorf("status = %+v, want port %s, usb %s, connected, one scan", st, target.name, xenon)
		}
	})

	t.Run("several match without a serial number", func(t *testing.T) {
		logs := new(testkit.Buffer)
		m := scanner.USBMatch{VID: xenon.VID, PID: xenon.PID}
		r := startRun(t, scanner.Options{Match: m, Enumerate: usb.Enumerate,
			Logger: slog.New(slog.NewTextHandler(logs, nil))})
		r.waitConnected(1)
		first := min(target.name, twin.name)
		if st := r.lastStatus(); st.Port != first {
			t.Errorf("opened %s, want the first by name, %s", st.Port, first)
		}
		r.stop()
		if !strings.Contains(logs.String(), "several serial ports match") {
			t.Errorf("no warning about the ambiguity:\n%s", logs)
		}
	})
}

func TestRunWaitsForTheScannerToBePluggedIn(t *testing.T) {
	usb := &fakeUSB{}
	r := startRun(t, scanner.Options{Match: xenon, Enumerate: usb.Enumerate})
	if err := r.waitLost(1); !errors.Is(err, scanner.ErrNoPort) {
		t.Fatalf("first open failed with %v, want ErrNoPort", err)
	}
	if st := r.lastStatus(); st.Connected || !strings.Contains(st.LastError, "0c2e:0b61") {
		t.Errorf("status = %+v, want not connected with the USB id in the error", st)
	}
	p := plugIn(t)
	usb.set(usbPort(p.name, xenon))
	r.waitConnected(1)
	write(t, p.master, []byte("]E0LATE\r"))
	if ids := memberIDs(t, r.waitScans(1)); !slices.Equal(ids, []string{"E0 LATE"}) {
		t.Errorf("member ids = %q", ids)
	}
	if st := r.lastStatus(); st.Reconnects != 0 || st.Port != p.name {
		t.Errorf("status = %+v, want port %s and no reconnects: the first open is not one", st, p.name)
	}
}

// replugs is how many times TestRunReplug pulls the scanner in each way.
func replugs() int {
	if testing.Short() {
		return 10
	}
	return 100
}

// TestRunReplug unplugs and replugs the scanner again and again, in the
// ways a till sees it happen; each time Run must be back within waitTimeout
// (5s) and deliver the scan made after the replug.
func TestRunReplug(t *testing.T) {
	type setup struct {
		opts scanner.Options
		// replug takes the scanner from old to a new pseudo-terminal and
		// returns it; i counts the replugs from 0.
		replug func(t *testing.T, i int, old *plug) *plug
	}
	modes := []struct {
		name  string
		setup func(t *testing.T, first *plug) setup
	}{
		{"usb id under a new name", func(t *testing.T, first *plug) setup {
			usb := &fakeUSB{}
			usb.set(usbPort(first.name, xenon))
			return setup{
				opts: scanner.Options{Match: xenon, Enumerate: usb.Enumerate},
				replug: func(t *testing.T, i int, old *plug) *plug {
					next := plugIn(t) // old is still open: next gets another name
					if i%2 == 0 {
						// Pulled: the device hangs up, then shows up anew.
						old.unplug()
						usb.set(usbPort(next.name, xenon))
					} else {
						// The enumerator moves the identity first; the old
						// pty stays up (until the test ends) and only times
						// out, so Run must see it gone from the list by itself.
						usb.set(usbPort(next.name, xenon))
					}
					return next
				},
			}
		}},
		{"usb id, device recreated", func(t *testing.T, first *plug) setup {
			usb := &fakeUSB{}
			usb.set(usbPort(first.name, xenon))
			return setup{
				opts: scanner.Options{Match: xenon, Enumerate: usb.Enumerate},
				replug: func(t *testing.T, i int, old *plug) *plug {
					old.unplug()
					next := plugIn(t) // the kernel often hands out the same name again
					usb.set(usbPort(next.name, xenon))
					return next
				},
			}
		}},
		{"port is a symlink that moves", func(t *testing.T, first *plug) setup {
			link := filepath.Join(t.TempDir(), "usb-Honeywell_Xenon-if00")
			relink(t, link, first.name)
			return setup{
				opts: scanner.Options{Port: link},
				replug: func(t *testing.T, i int, old *plug) *plug {
					next := plugIn(t)
					relink(t, link, next.name)
					old.unplug()
					return next
				},
			}
		}},
		{"usb id listed as a symlink that moves", func(t *testing.T, first *plug) setup {
			link := filepath.Join(t.TempDir(), "by-id-scanner")
			relink(t, link, first.name)
			usb := &fakeUSB{}
			usb.set(usbPort(link, xenon))
			return setup{
				opts: scanner.Options{Match: xenon, Enumerate: usb.Enumerate},
				replug: func(t *testing.T, i int, old *plug) *plug {
					next := plugIn(t)
					relink(t, link, next.name)
					old.unplug()
					return next
				},
			}
		}},
	}
	n := replugs()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			cur := plugIn(t)
			s := m.setup(t, cur)
			logs := new(testkit.Buffer)
			s.opts.Logger = slog.New(slog.NewTextHandler(logs, nil)) // INFO and up; t.Output would drown
			r := startRun(t, s.opts)
			r.waitConnected(1)
			write(t, cur.master, []byte("]E0R-start\r"))
			r.waitScans(1)
			for i := range n {
				cur = s.replug(t, i, cur)
				r.waitLost(i + 1)
				r.waitConnected(i + 2)
				want := fmt.Sprintf("R-%d", i)
				write(t, cur.master, []byte("]E0"+want+"\r"))
				got := r.waitScans(i + 2)
				if last := got[len(got)-1]; len(got) != i+2 || last.Data != want {
					t.Fatalf("replug %d: scans end with %+v (%d in all), want %s", i, last, len(got), want)
				}
			}
			st := r.lastStatus()
			if !st.Connected || st.Reconnects != n || st.Scans != uint64(n+1) || st.LastError == "" || st.LastScan.IsZero() {
				t.Errorf("status after %d replugs = %+v", n, st)
			}
			if s.opts.Port == "" && st.Port != cur.name && !strings.HasSuffix(st.Port, "by-id-scanner") {
				t.Errorf("status port %s, want the last pty %s", st.Port, cur.name)
			}
			if c := strings.Count(logs.String(), `msg="scanner port open"`); c != n+1 {
				t.Errorf("%d INFO records of the port opening, want %d", c, n+1)
			}
			if m.name == "usb id under a new name" && !strings.Contains(logs.String(), "scanner found under a new port name") {
				t.Error("no INFO record of the scanner found under a new name")
			}
		})
	}
}

// A payment card scanned by mistake reaches OnScan (the agent must see it
// to refuse it), but neither Run nor MemberID lets its number into a log
// record, an error or the Status, at any level.
func TestPaymentCardsNeverLogged(t *testing.T) {
	p := plugIn(t)
	usb := &fakeUSB{}
	usb.set(usbPort(p.name, xenon))
	logs := new(testkit.Buffer)
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var refused []error
	var mu sync.Mutex
	r := startRun(t, scanner.Options{
		Match: xenon, Enumerate: usb.Enumerate, Logger: log,
		OnScan: func(s scanner.Scan) { // as the agent does
			id, err := scanner.MemberID(s, scanner.CheckLuhn)
			if err != nil {
				log.Warn("scan is not a member id; ignored", "symbology", s.Symbology, "len", len(s.Data), "err", err)
				mu.Lock()
				refused = append(refused, err)
				mu.Unlock()
				return
			}
			log.Info("member scanned", "member", id)
		},
	})
	r.waitConnected(1)
	scans := []string{
		"]C04111111111111111", "5555555555554444", "]Q1378282246310005", "4111 1111 1111 1111",
		";6011111111111117=25121010000000000000?", "]d20109521234543213213530111333300000",
		"]C07000000000000005", // a member, for contrast
	}
	for _, s := range scans {
		write(t, p.master, []byte(s+"\r\n"))
	}
	r.waitScans(len(scans))
	r.stop()

	out := logs.String()
	st, _ := json.Marshal(r.lastStatus())
	for _, pan := range []string{"4111111111111111", "5555555555554444", "378282246310005", "6011111111111117", "3530111333300000"} {
		for i := 0; i+6 <= len(pan); i++ { // no six digits of it in a row: not the number, not a masked form
			if w := pan[i : i+6]; strings.Contains(out, w) || strings.Contains(string(st), w) {
				t.Fatalf("digits %s of card %s… in the log or status:\n%s\n%s", w, pan[:1], out, st)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refused) != len(scans)-1 {
		t.Fatalf("%d scans refused, want %d", len(refused), len(scans)-1)
	}
	for _, err := range refused {
		if !errors.Is(err, scanner.ErrPaymentCard) {
			t.Errorf("refused with %v, want ErrPaymentCard", err)
		}
	}
	if !strings.Contains(out, `"member":"7000000000000005"`) || strings.Count(out, "payment_card") != len(refused) {
		t.Errorf("the log does not show the member and each refusal's code:\n%s", out)
	}
}
