//go:build unix

package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent/scanner"
	"github.com/tillsync/tillsync/internal/testkit"
)

func TestScanTestUsageMistakes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"scan-test"}, []string{"--port or --usb is required", "tillsync-agent ports"}},
		{[]string{"scan-test", "--port", "/dev/ttyACM0", "--usb", "0c2e:0b61"}, []string{"--port and --usb exclude each other"}},
		{[]string{"scan-test", "--usb", "0c2e"}, []string{"--usb", "VID:PID"}},
		{[]string{"scan-test", "--usb", "0c2e:zz"}, []string{"--usb", "pid", "four hex digits"}},
		{[]string{"scan-test", "--port", "/dev/ttyACM0", "--check-digit", "mod10"}, []string{"--check-digit", "none, luhn or mod11"}},
		{[]string{"scan-test", "--port", "/dev/ttyACM0", "--baud", "0"}, []string{"--baud 0"}},
		{[]string{"scan-test", "--port", "/dev/ttyACM0", "--baud", "fast"}, []string{"--baud", "--help"}},
		{[]string{"scan-test", "extra"}, []string{`"extra"`, "tillsync-agent scan-test --help"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			run(t, tc.args...).OneLine(t, 2, tc.wants...)
		})
	}
	out := run(t, "scan-test", "--help").OK(t)
	for _, w := range []string{"Usage:", "tillsync-agent scan-test", "--port", "--usb", "--baud", "--check-digit", "Examples:", "Ctrl-C"} {
		if !strings.Contains(out, w) {
			t.Errorf("scan-test --help does not mention %q", w)
		}
	}
}

// cards are the payment card test numbers scanned in these tests; their
// digits must never be printed.
var cards = []string{"4111111111111111", "5555555555554444", "378282246310005"}

func assertNoCards(t *testing.T, out string) {
	t.Helper()
	for _, pan := range cards {
		for i := 0; i+6 <= len(pan); i++ {
			if strings.Contains(out, pan[i:i+6]) {
				t.Fatalf("output holds digits %s of a card number:\n%s", pan[i:i+6], out)
			}
		}
	}
}

func writeScan(t *testing.T, f *os.File, s string) {
	t.Helper()
	if _, err := f.Write([]byte(s + "\r\n")); err != nil {
		t.Fatal(err)
	}
}

// The real binary, as a technician runs it: scans of every kind, the
// scanner unplugged and plugged back, Ctrl-C.
func TestScanTestBinary(t *testing.T) {
	t.Parallel()
	first, second := testkit.OpenPTY(t), testkit.OpenPTY(t)
	link := filepath.Join(t.TempDir(), "scanner")
	if err := os.Symlink(first.Name, link); err != nil {
		t.Fatal(err)
	}
	p := start(t, "scan-test", "--port", link, "--check-digit", "luhn")
	p.WaitFor(t, 10*time.Second, "the port to open", func() bool {
		return strings.Contains(p.Output(), "port "+link+" open")
	})
	scans := []struct{ scan, want string }{
		{"]C079927398713", `]C0 Code 128 +11 bytes  member id 79927398713`},
		{"79927398710", `\(no AIM id\) +11 bytes  not a member id: the luhn check digit does not match .*\[bad_check_digit\]`},
		{"]d2\x1d8018123456789012345675", `]d2 GS1 DataMatrix +23 bytes  GS1 \(8018\)123456789012345675; member id 123456789012345675`},
		{"]C10109521234543213" + "10AB-12", `]C1 GS1-128 +23 bytes  GS1 \(01\)09521234543213 \(10\)AB-12; not a member id: GS1 data without AI \(8018\).*\[invalid_id\]`},
		{"]C1" + "0109521234543214", `]C1 GS1-128 +16 bytes  not a member id: malformed GS1 element string at byte 2: AI \(01\): wrong check digit \[invalid_id\]`},
		{"]E0" + cards[0], `]E0 EAN-13 +16 bytes  refused: payment card number \(not shown, not stored\)`},
		{"]Q1https://x.example/m/42", `]Q1 QR Code +22 bytes  not a member id: must be 1-64 characters .*\[invalid_id\]`},
	}
	for _, s := range scans {
		writeScan(t, first.Master, s.scan)
	}
	for _, s := range scans {
		re := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  ` + s.want + `$`)
		p.WaitFor(t, 5*time.Second, "a line matching "+s.want, func() bool { return re.MatchString(p.Output()) })
	}

	// Unplugged, and back under the same link: lost, then reopened.
	tmp := link + ".new"
	if err := os.Symlink(second.Name, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	first.Master.Close()
	p.WaitFor(t, 5*time.Second, "the port to be lost and reopened", func() bool {
		out := p.Output()
		return strings.Contains(out, "port "+link+" lost: ") && strings.Contains(out, "port "+link+" reopened (reconnect 1)")
	})
	writeScan(t, second.Master, "5555 5555 5555 4444")
	writeScan(t, second.Master, "]C07000000000000005")
	p.WaitFor(t, 5*time.Second, "the scans after the replug", func() bool {
		return strings.Contains(p.Output(), "member id 7000000000000005")
	})

	if err := p.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := p.ExitCode(t, 5*time.Second); code != 0 {
		t.Errorf("exit %d after Ctrl-C, want 0; output:\n%s", code, p.Output())
	}
	out := p.Output()
	if !strings.HasSuffix(out, "Stopped: 9 scans, 3 member ids, 2 payment cards refused.\n") {
		t.Errorf("output does not end with the summary:\n%s", out)
	}
	assertNoCards(t, out)
	t.Log("\n" + out)
}

// --usb finds the scanner by its USB identity, again after it comes back
// under another name (an enumerator stand-in maps the identity to a pty).
func TestScanTestUSB(t *testing.T) {
	t.Parallel()
	first, second := testkit.OpenPTY(t), testkit.OpenPTY(t)
	var mu sync.Mutex
	current := first.Name
	enumerate := func() ([]scanner.PortInfo, error) {
		mu.Lock()
		defer mu.Unlock()
		return []scanner.PortInfo{{Name: current, USB: true, VID: "0c2e", PID: "0b61", SerialNumber: "SN1"}}, nil
	}
	c := newScanTestCmd(enumerate)
	out := new(testkit.Buffer)
	c.SetOut(out)
	c.SetErr(out)
	c.SetArgs([]string{"--usb", "0C2E:0B61:SN1", "--check-digit", "mod11"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.ExecuteContext(ctx) }()
	stop := sync.OnceValue(func() error { // Ctrl-C
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(2 * time.Second):
			return errors.New("scan-test did not stop within 2s of cancel")
		}
	})
	t.Cleanup(func() { stop() })
	waitOut := func(what string, cond func(string) bool) {
		t.Helper()
		testkit.WaitFor(t, 5*time.Second, what+" in:\n"+out.String(), func() bool { return cond(out.String()) })
	}
	waitOut("the port open", func(s string) bool { return strings.Contains(s, "port "+first.Name+" open") })
	if !strings.HasPrefix(out.String(), "Looking for the scanner with USB id 0c2e:0b61:SN1 at 9600 baud") {
		t.Errorf("first line: %q", strings.SplitN(out.String(), "\n", 2)[0])
	}
	writeScan(t, first.Master, "]E0123456785")
	writeScan(t, first.Master, cards[2])
	waitOut("the scans", func(s string) bool { return strings.Contains(s, "refused: payment card") })

	mu.Lock()
	current = second.Name
	mu.Unlock()
	first.Master.Close()
	waitOut("the reopen under the new name", func(s string) bool {
		return strings.Contains(s, "port "+second.Name+" reopened (reconnect 1)")
	})
	writeScan(t, second.Master, "]E0123456784")
	waitOut("the scan after the replug", func(s string) bool { return strings.Contains(s, "[bad_check_digit]") })

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, w := range []string{"]E0 EAN-13", "member id 123456785", "not a member id: the mod11 check digit does not match", "Stopped: 3 scans, 1 member ids, 1 payment cards refused."} {
		if !strings.Contains(s, w) {
			t.Errorf("output does not have %q:\n%s", w, s)
		}
	}
	assertNoCards(t, s)
}
