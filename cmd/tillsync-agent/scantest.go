package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/tillsync/tillsync/agent/scanner"
	"github.com/tillsync/tillsync/internal/cli"
	"github.com/tillsync/tillsync/protocol"
)

func scanTestCmd() *cobra.Command { return newScanTestCmd(nil) }

// newScanTestCmd builds `scan-test`; enumerate replaces the port enumerator
// for --usb in tests (nil: the real one).
func newScanTestCmd(enumerate func() ([]scanner.PortInfo, error)) *cobra.Command {
	var (
		port, usb, check string
		baud             int
	)
	c := &cobra.Command{
		Use:   "scan-test",
		Short: "Show each scan live: symbology, length, and whether it is a member id",
		Long: `Open the barcode scanner and show every scan as it comes, one line each: the
time, the symbology (from the AIM identifier, if the scanner sends one), the
length, and the verdict the agent would reach: the member id, the GS1
elements, a refused payment card, or why it is not a member id. The port being
opened, lost and reopened is shown too, so unplugging and replugging the
scanner shows whether the agent would find it again. Ctrl-C stops.

Choose the scanner by --port, or by --usb VID:PID[:SERIAL] as listed by
"tillsync-agent ports". A payment card number is never shown, only refused.
Stop the agent first if it runs on this machine: one port, one reader.`,
		Example: `  tillsync-agent scan-test --port /dev/ttyACM0
  tillsync-agent scan-test --port COM3 --baud 115200
  tillsync-agent scan-test --usb 0c2e:0b61 --check-digit luhn
  tillsync-agent scan-test --usb 05e0:1701:S/N12345 --check-digit mod11`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			opts := scanner.Options{Port: port, Baud: baud, Enumerate: enumerate}
			switch {
			case port == "" && usb == "":
				return cli.Usagef("--port or --usb is required; list the ports with tillsync-agent ports")
			case port != "" && usb != "":
				return cli.Usagef("--port and --usb exclude each other")
			case baud <= 0:
				return cli.Usagef("--baud %d: want a positive line speed, e.g. 9600", baud)
			}
			if usb != "" {
				m, err := scanner.ParseUSBMatch(usb)
				if err != nil {
					return cli.Usagef("--usb: %v", err)
				}
				opts.Match = m
			}
			scheme, err := scanner.ParseCheckDigit(check)
			if err != nil {
				return cli.Usagef("--check-digit: %v", err)
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runScanTest(ctx, c.OutOrStdout(), opts, scheme)
		},
	}
	f := c.Flags()
	f.StringVar(&port, "port", "", "serial port of the scanner, e.g. COM3 or /dev/ttyACM0")
	f.StringVar(&usb, "usb", "", "the scanner's USB id VID:PID[:SERIAL], e.g. 0c2e:0b61 (see tillsync-agent ports)")
	f.IntVar(&baud, "baud", scanner.DefaultBaud, "the scanner's baud rate")
	f.StringVar(&check, "check-digit", "none", "check digit of member card numbers: none, luhn or mod11")
	return c
}

// scanTest prints what scanner.Run reports. Run calls OnScan and OnStatus
// from one goroutine, so its fields need no lock.
type scanTest struct {
	w       io.Writer
	check   scanner.CheckDigit
	prev    scanner.Status
	members int
	refused int
	scans   int
}

func runScanTest(ctx context.Context, w io.Writer, opts scanner.Options, check scanner.CheckDigit) error {
	st := &scanTest{w: w, check: check}
	if opts.Port != "" {
		fmt.Fprintf(w, "Reading the scanner on %s at %d baud, member numbers with check digit %s. Scan a card; Ctrl-C stops.\n", opts.Port, opts.Baud, check)
	} else {
		fmt.Fprintf(w, "Looking for the scanner with USB id %s at %d baud, member numbers with check digit %s. Scan a card; Ctrl-C stops.\n", opts.Match, opts.Baud, check)
	}
	opts.OnScan = st.scan
	opts.OnStatus = st.status
	if err := scanner.Run(ctx, opts); err != nil {
		return err
	}
	fmt.Fprintf(w, "Stopped: %d scans, %d member ids, %d payment cards refused.\n", st.scans, st.members, st.refused)
	return nil
}

func (t *scanTest) line(at time.Time, format string, args ...any) {
	fmt.Fprintf(t.w, "%s  %s\n", at.Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (t *scanTest) status(s scanner.Status) {
	prev := t.prev
	t.prev = s
	now := s.Since
	switch {
	case s.Connected && !prev.Connected && s.Reconnects == 0:
		t.line(now, "port %s open", s.Port)
	case s.Connected && !prev.Connected:
		t.line(now, "port %s reopened (reconnect %d)", s.Port, s.Reconnects)
	case !s.Connected && prev.Connected && s.LastErrorAt.After(prev.LastErrorAt):
		t.line(now, "port %s lost: %s; looking for it again", s.Port, s.LastError)
	case !s.Connected && prev.Connected:
		t.line(now, "port %s closed", s.Port)
	case !s.Connected && s.LastError != "" && s.LastError != prev.LastError:
		t.line(s.LastErrorAt, "scanner not ready: %s; retrying", s.LastError)
	}
}

func (t *scanTest) scan(s scanner.Scan) {
	t.scans++
	sym := "(no AIM id)"
	if s.Symbology != "" {
		sym = "]" + s.Symbology + " " + scanner.SymbologyName(s.Symbology)
	}
	t.line(s.At, "%-24s %4d bytes  %s", sym, len(s.Data), t.verdict(s))
}

// verdict says what the agent would make of s, never showing a payment
// card number.
func (t *scanTest) verdict(s scanner.Scan) string {
	id, err := scanner.MemberID(s, t.check)
	var gs1 string
	if !errors.Is(err, scanner.ErrPaymentCard) && scanner.IsGS1(s) {
		if d, perr := scanner.ParseGS1(s.Data); perr == nil {
			var b strings.Builder
			for i, e := range d {
				if i > 0 {
					b.WriteByte(' ')
				}
				b.WriteString("(" + e.AI + ")" + printable(e.Value))
			}
			gs1 = "GS1 " + b.String() + "; "
		}
	}
	switch {
	case err == nil:
		t.members++
		return gs1 + "member id " + id
	case errors.Is(err, scanner.ErrPaymentCard):
		t.refused++
		return "refused: payment card number (not shown, not stored)"
	}
	why := err.Error()
	var pe *protocol.Error
	if errors.As(err, &pe) {
		why = pe.Msg + " [" + string(pe.Code) + "]"
	}
	return gs1 + "not a member id: " + why
}

// printable keeps a value on its line: control characters become '?'.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
