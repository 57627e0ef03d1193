package scanner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"syscall"
	"time"

	"go.bug.st/serial"

	"github.com/tillsync/tillsync/internal/clock"
)

// Scan is one decoded read.
type Scan struct {
	// Symbology is the AIM symbology identifier without the leading ']'
	// (e.g. "E0", "C0", "Q1", "d2"), or "" when the scanner sent none.
	Symbology string
	// Data is the payload, with the AIM prefix and the frame terminator removed.
	Data string
	// At is when the frame completed, by Options.Clock.
	At time.Time
}

// Defaults for Options fields left zero.
const (
	DefaultBaud        = 9600
	DefaultReadTimeout = 250 * time.Millisecond
	DefaultReopen      = time.Second
)

// vanishCheckReads is how many consecutive empty reads (read timeouts) pass
// between checks that the port still exists: 8 × 250 ms ≈ 2 s by default.
// Some USB-serial drivers (Windows especially) keep answering reads on an
// unplugged device with timeouts instead of an error.
const vanishCheckReads = 8

// readBufSize is plenty: a scan is tens of bytes and arrives at 9600 baud.
const readBufSize = 256

// ErrNoPort is returned (wrapped) while Run looks for the scanner by USB
// identity and no port matches: the scanner is unplugged, or set to a mode
// without a serial port (keyboard or HID POS). Run reports it through
// OnState and OnStatus and keeps looking.
var ErrNoPort = errors.New("no serial port matches the scanner's USB id")

// ErrVanished is returned (wrapped) when the open port disappears: its
// device node is gone, or the enumerator no longer lists it with the USB
// identity it was chosen by. Run reports it and reopens.
var ErrVanished = errors.New("port vanished")

// Options configures Run.
type Options struct {
	// Port is the serial port name: "COM3", "/dev/ttyACM0", a stable udev
	// link such as "/dev/serial/by-id/…", or a pseudo-terminal in tests.
	// Required unless Match is set; when both are set, Port wins.
	Port string
	// Match chooses the scanner by USB VID/PID (and serial number) when
	// Port is "". The port is looked up anew at every (re)open, so the
	// scanner is found again after an unplug, under whatever name the OS
	// gives it then. With several matches the first by name is used (and a
	// warning logged): set Match.Serial to choose.
	Match USBMatch
	// Enumerate lists the serial ports for Match. Default ListPorts; tests
	// inject a fake that maps a USB identity to a pseudo-terminal.
	Enumerate func() ([]PortInfo, error)
	// Baud is the line speed; 8 data bits, no parity, 1 stop bit.
	// Default DefaultBaud (9600).
	Baud int
	// ReadTimeout bounds each read, and so how often the reader looks at ctx
	// and checks the port still exists. Default DefaultReadTimeout (250ms).
	ReadTimeout time.Duration
	// Reopen is the wait before reopening a port that failed or vanished.
	// Default DefaultReopen (1s).
	Reopen time.Duration
	// Logger receives the port's life (INFO opened, WARN lost and retries).
	// Default: discard.
	Logger *slog.Logger
	// Clock stamps Scan.At and the times in Status. Default clock.Real{}.
	Clock clock.Clock
	// OnScan is called for each scan, in order, from the goroutine running
	// Run. It must not block long: while it runs the port is not read (the
	// OS buffers a few KiB). Required.
	OnScan func(Scan)
	// OnState, if set, is called from the goroutine running Run when the
	// port opens (true, nil), when it is lost (false, the error), when the
	// first attempt to open it fails (false, the error), and when Run closes
	// it on return (false, nil). Repeated failures to reopen are not
	// reported again.
	OnState func(connected bool, err error)
	// OnStatus, if set, is called from the goroutine running Run with the
	// whole Status: once when Run starts, then whenever it changes (port
	// opened or lost, a new error, each scan). A failure to reopen that
	// repeats the previous error is not a change. It must not block long.
	OnStatus func(Status)
}

// Status is the scanner as Run sees it, for health reports.
type Status struct {
	// Port is the port in use, or last used; before the first open, the
	// configured Port ("" when chosen by USB identity).
	Port string `json:"port,omitempty"`
	// USB is Options.Match as VID:PID[:SERIAL], when the scanner is chosen
	// by USB identity.
	USB string `json:"usb,omitempty"`
	// Connected reports whether the port is open.
	Connected bool `json:"connected"`
	// Since is when Connected last changed (or Run started).
	Since time.Time `json:"since,omitzero"`
	// LastError is the last failure to open or read the port. It stays
	// after the port is back, so an operator can see why it dropped.
	LastError string `json:"last_error,omitempty"`
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Reconnects counts the opens after the first: each one is the
	// scanner coming back after it was lost.
	Reconnects int `json:"reconnects"`
	// Scans counts the scans read since Run started.
	Scans uint64 `json:"scans"`
	// LastScan is when the last scan was read.
	LastScan time.Time `json:"last_scan,omitzero"`
}

// Run owns the scanner's port until ctx is done: it finds it (opts.Port, or
// the port whose USB identity matches opts.Match), opens it (raw mode, 8N1,
// opts.Baud), reads it with a read timeout, frames and parses what arrives
// and calls opts.OnScan for each scan. On a read error, or when the port
// vanishes, it closes the port and finds and reopens it after opts.Reopen,
// for as long as it takes.
//
// Run returns nil when ctx is cancelled (within about opts.ReadTimeout). It
// returns an error at once, without touching the port, only when opts are
// unusable: neither Port nor Match, an invalid Match, nil OnScan, negative
// Baud, or Match in a build that cannot see USB identities (USBDetails).
func Run(ctx context.Context, opts Options) error {
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	r := &runner{opts: o}
	if o.Port != "" {
		r.base = o.Logger.With("port", o.Port)
	} else {
		r.base = o.Logger.With("usb", o.Match.String())
		r.status.USB = o.Match.String()
	}
	r.log = r.base
	r.status.Port = o.Port
	r.status.Since = o.Clock.Now()
	r.reportStatus()
	return r.run(ctx)
}

func (o Options) withDefaults() (Options, error) {
	if o.Port == "" && o.Match.IsZero() {
		return o, errors.New("scanner: neither Options.Port nor Options.Match is set")
	}
	if o.Port == "" {
		if err := o.Match.Validate(); err != nil {
			return o, fmt.Errorf("scanner: Options.Match: %w", err)
		}
		if o.Enumerate == nil {
			if !USBDetails {
				return o, errors.New("scanner: this build cannot see USB ids (macOS without cgo); name the scanner's port instead")
			}
			o.Enumerate = ListPorts
		}
	}
	if o.OnScan == nil {
		return o, errors.New("scanner: Options.OnScan is nil")
	}
	if o.Baud < 0 {
		return o, fmt.Errorf("scanner: Options.Baud %d is negative", o.Baud)
	}
	if o.Baud == 0 {
		o.Baud = DefaultBaud
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.Reopen <= 0 {
		o.Reopen = DefaultReopen
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Clock = clock.Or(o.Clock)
	return o, nil
}

// runner is the state of one Run; it lives on Run's goroutine only.
type runner struct {
	opts   Options
	base   *slog.Logger // Logger with the port, or the USB id when chosen by it
	log    *slog.Logger // base with the port in use
	framer Framer

	reported    bool   // OnState has been called at least once
	lastOpenErr string // the last open error logged at WARN, to not repeat it every Reopen
	opened      bool   // the port has been open at least once
	lastName    string // the port last opened
	ambiguous   int    // how many ports matched at the last warning about several

	status Status // as last reported through OnStatus
}

func (r *runner) run(ctx context.Context) error {
	for {
		if ctx.Err() != nil {
			return nil
		}
		name, err := r.resolve()
		var port serial.Port
		if err == nil {
			port, err = r.open(name)
		}
		if err != nil {
			r.openFailed(err)
		} else {
			r.connected(name)
			err = r.read(ctx, port, name)
			if cerr := port.Close(); cerr != nil {
				r.log.Debug("scanner port close", "err", cerr)
			}
			if err == nil { // ctx is done
				r.log.Info("scanner port closed")
				r.setState(false, nil)
				r.status.Connected, r.status.Since = false, r.opts.Clock.Now()
				r.reportStatus()
				return nil
			}
			r.log.Warn("scanner port lost; reopening", "err", err, "retry_in", r.opts.Reopen)
			r.setState(false, err)
			now := r.opts.Clock.Now()
			r.status.Connected, r.status.Since = false, now
			r.status.LastError, r.status.LastErrorAt = err.Error(), now
			r.reportStatus()
		}
		if !sleep(ctx, r.opts.Reopen) {
			return nil
		}
	}
}

// resolve returns the name of the port to open: Options.Port, or the port
// the enumerator lists with the USB identity of Options.Match.
func (r *runner) resolve() (string, error) {
	if r.opts.Port != "" {
		return r.opts.Port, nil
	}
	m := r.opts.Match
	ports, err := r.opts.Enumerate()
	if err != nil {
		return "", fmt.Errorf("scanner: look for usb %s: %w", m, err)
	}
	var names []string
	for _, p := range ports {
		if m.Matches(p) && p.Name != "" {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("scanner: usb %s: %w (%d serial ports listed)", m, ErrNoPort, len(ports))
	}
	slices.Sort(names)
	if len(names) > 1 && len(names) != r.ambiguous {
		r.base.Warn("several serial ports match the scanner's USB id; using the first (set its serial number to choose)",
			"ports", names, "using", names[0])
	}
	r.ambiguous = len(names)
	return names[0], nil
}

func (r *runner) open(name string) (serial.Port, error) {
	// InitialStatusBits stays nil: on Unix that leaves the modem lines as the
	// open left them (DTR and RTS up), and it is the only choice that works
	// on a pseudo-terminal, which has no modem lines (TIOCMGET fails).
	port, err := serial.Open(name, &serial.Mode{
		BaudRate: r.opts.Baud,
		DataBits: 8,
		Parity:   serial.NoParity,
		StopBits: serial.OneStopBit,
	})
	if err != nil {
		return nil, fmt.Errorf("scanner: open %s: %w", name, err)
	}
	if err := port.SetReadTimeout(r.opts.ReadTimeout); err != nil {
		port.Close()
		return nil, fmt.Errorf("scanner: set read timeout on %s: %w", name, err)
	}
	return port, nil
}

// connected records a successful open of name.
func (r *runner) connected(name string) {
	r.lastOpenErr = ""
	if r.opts.Port == "" {
		r.log = r.base.With("port", name)
		if r.lastName != "" && r.lastName != name {
			r.log.Info("scanner found under a new port name", "was", r.lastName)
		}
	}
	r.log.Info("scanner port open", "baud", r.opts.Baud)
	r.setState(true, nil)
	if r.opened {
		r.status.Reconnects++
	}
	r.opened, r.lastName = true, name
	r.status.Port, r.status.Connected, r.status.Since = name, true, r.opts.Clock.Now()
	r.reportStatus()
}

// openFailed logs a failed open at WARN the first time and whenever the
// reason changes; a scanner left unplugged overnight must not flood the log.
func (r *runner) openFailed(err error) {
	if msg := err.Error(); msg != r.lastOpenErr {
		r.lastOpenErr = msg
		r.base.Warn("scanner port cannot be opened; retrying", "err", err, "retry_in", r.opts.Reopen)
		r.status.LastError, r.status.LastErrorAt = msg, r.opts.Clock.Now()
		r.reportStatus()
	} else {
		r.base.Debug("scanner port still cannot be opened", "err", err)
	}
	if !r.reported {
		r.setState(false, err)
	}
}

func (r *runner) setState(connected bool, err error) {
	r.reported = true
	if r.opts.OnState != nil {
		r.opts.OnState(connected, err)
	}
}

// reportStatus hands status to OnStatus; callers call it when it changed.
func (r *runner) reportStatus() {
	if r.opts.OnStatus == nil {
		return
	}
	r.opts.OnStatus(r.status)
}

// read reads port until ctx is done (nil) or the port fails or vanishes (the
// error). It never uses io.ReadFull: a read timeout returns (0, nil), which
// would make ReadFull spin.
func (r *runner) read(ctx context.Context, port serial.Port, name string) error {
	r.framer.Reset()
	buf := make([]byte, readBufSize)
	idle := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		n, err := port.Read(buf)
		if n > 0 {
			idle = 0
			r.feed(buf[:n])
		}
		if err != nil {
			if isHangup(err) {
				return fmt.Errorf("scanner: read %s: device hung up (unplugged?): %w", name, err)
			}
			return fmt.Errorf("scanner: read %s: %w", name, err)
		}
		if n == 0 {
			idle++
			if idle%vanishCheckReads == 0 {
				if err := r.present(name); err != nil {
					return err
				}
			}
		}
	}
}

// present returns an error when the open port name is gone: its device
// node vanished or, when chosen by USB identity, the enumerator no longer
// lists it with that identity (the name may now belong to another device).
// An enumerator failure is not taken as proof of absence.
func (r *runner) present(name string) error {
	if err := portPresent(name); err != nil {
		return err
	}
	if r.opts.Port != "" {
		return nil
	}
	ports, err := r.opts.Enumerate()
	if err != nil {
		r.log.Debug("scanner port list failed; not taken as the port vanishing", "err", err)
		return nil
	}
	for _, p := range ports {
		if p.Name == name && r.opts.Match.Matches(p) {
			return nil
		}
	}
	return fmt.Errorf("scanner: %s: %w from the port list (usb %s)", name, ErrVanished, r.opts.Match)
}

func (r *runner) feed(p []byte) {
	before := r.framer.Oversize()
	r.framer.Feed(p, r.emit)
	if n := r.framer.Oversize() - before; n > 0 {
		r.log.Warn("scanner frame too long; discarded (scanner suffix or baud rate misconfigured?)",
			"max_bytes", MaxFrame, "count", n)
	}
}

func (r *runner) emit(frame []byte) {
	sym, data := ParseAIM(frame)
	s := Scan{Symbology: sym, Data: string(data), At: r.opts.Clock.Now()}
	// Never the data itself: member ids may be personal.
	r.log.Debug("scan", "symbology", sym, "bytes", len(data))
	r.opts.OnScan(s)
	r.status.Scans++
	r.status.LastScan = s.At
	r.reportStatus()
}

// isHangup reports whether a read error means the device went away. On Linux
// a tty whose other end is gone (USB unplug, pty master closed) reads as
// zero bytes, which go.bug.st/serial reports as a PortError "Port has been
// closed" — misleading in a log, as nobody closed it — or, depending on the
// driver and timing, as EIO.
func isHangup(err error) bool {
	var pe *serial.PortError
	if errors.As(err, &pe) && pe.Code() == serial.PortClosed {
		return true
	}
	return errors.Is(err, syscall.EIO)
}

// sleep waits d or until ctx is done, reporting whether d passed. The clock
// only tells the time; waiting is real time, like the port's read timeout.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
