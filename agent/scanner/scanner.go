package scanner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// Options configures Run.
type Options struct {
	// Port is the serial port name: "COM3", "/dev/ttyACM0", a stable udev
	// link such as "/dev/serial/by-id/…", or a pseudo-terminal in tests.
	// Required.
	Port string
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
	// Clock stamps Scan.At. Default clock.Real{}.
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
}

// Run owns the port named by opts.Port until ctx is done: it opens it (raw
// mode, 8N1, opts.Baud), reads it with a read timeout, frames and parses what
// arrives and calls opts.OnScan for each scan. On a read error, or when the
// port vanishes, it closes the port and reopens it after opts.Reopen, for as
// long as it takes.
//
// Run returns nil when ctx is cancelled (within about opts.ReadTimeout). It
// returns an error at once, without touching the port, only when opts are
// unusable: empty Port, nil OnScan, negative Baud.
func Run(ctx context.Context, opts Options) error {
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	r := &runner{
		opts: o,
		log:  o.Logger.With("port", o.Port),
	}
	return r.run(ctx)
}

func (o Options) withDefaults() (Options, error) {
	if o.Port == "" {
		return o, errors.New("scanner: Options.Port is empty")
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
	log    *slog.Logger
	framer Framer

	reported    bool   // OnState has been called at least once
	lastOpenErr string // the last open error logged at WARN, to not repeat it every Reopen
}

func (r *runner) run(ctx context.Context) error {
	for {
		if ctx.Err() != nil {
			return nil
		}
		port, err := r.open()
		if err != nil {
			r.openFailed(err)
		} else {
			r.lastOpenErr = ""
			r.log.Info("scanner port open", "baud", r.opts.Baud)
			r.setState(true, nil)

			err = r.read(ctx, port)
			if cerr := port.Close(); cerr != nil {
				r.log.Debug("scanner port close", "err", cerr)
			}
			if err == nil { // ctx is done
				r.log.Info("scanner port closed")
				r.setState(false, nil)
				return nil
			}
			r.log.Warn("scanner port lost; reopening", "err", err, "retry_in", r.opts.Reopen)
			r.setState(false, err)
		}
		if !sleep(ctx, r.opts.Reopen) {
			return nil
		}
	}
}

func (r *runner) open() (serial.Port, error) {
	// InitialStatusBits stays nil: on Unix that leaves the modem lines as the
	// open left them (DTR and RTS up), and it is the only choice that works
	// on a pseudo-terminal, which has no modem lines (TIOCMGET fails).
	port, err := serial.Open(r.opts.Port, &serial.Mode{
		BaudRate: r.opts.Baud,
		DataBits: 8,
		Parity:   serial.NoParity,
		StopBits: serial.OneStopBit,
	})
	if err != nil {
		return nil, fmt.Errorf("scanner: open %s: %w", r.opts.Port, err)
	}
	if err := port.SetReadTimeout(r.opts.ReadTimeout); err != nil {
		port.Close()
		return nil, fmt.Errorf("scanner: set read timeout on %s: %w", r.opts.Port, err)
	}
	return port, nil
}

// openFailed logs a failed open at WARN the first time and whenever the
// reason changes; a scanner left unplugged overnight must not flood the log.
func (r *runner) openFailed(err error) {
	if msg := err.Error(); msg != r.lastOpenErr {
		r.lastOpenErr = msg
		r.log.Warn("scanner port cannot be opened; retrying", "err", err, "retry_in", r.opts.Reopen)
	} else {
		r.log.Debug("scanner port still cannot be opened", "err", err)
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

// read reads port until ctx is done (nil) or the port fails or vanishes (the
// error). It never uses io.ReadFull: a read timeout returns (0, nil), which
// would make ReadFull spin.
func (r *runner) read(ctx context.Context, port serial.Port) error {
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
				return fmt.Errorf("scanner: read %s: device hung up (unplugged?): %w", r.opts.Port, err)
			}
			return fmt.Errorf("scanner: read %s: %w", r.opts.Port, err)
		}
		if n == 0 {
			idle++
			if idle%vanishCheckReads == 0 {
				if err := portPresent(r.opts.Port); err != nil {
					return err
				}
			}
		}
	}
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
