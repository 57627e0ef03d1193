package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/kardianos/service"
	"github.com/tillsync/tillsync/agent/config"
	"github.com/tillsync/tillsync/internal/logfile"
)

// newLogger builds the agent's logger from the config's log section. As a
// service it writes to the OS service log (osLog; stderr if the OS log
// could not be opened) and, unless log.file is false, to the rotating file
// in the data dir. In a terminal it writes to stderr, as it always did, and
// to the file when log.file is true. close closes the file.
func newLogger(cfg *config.Config, asService bool, osLog *osLogHandler, stderr io.Writer) (log *slog.Logger, close func()) {
	ho := &slog.HandlerOptions{Level: cfg.LogLevel()}
	handler := func(w io.Writer) slog.Handler {
		if cfg.Log.Format == "json" {
			return slog.NewJSONHandler(w, ho)
		}
		return slog.NewTextHandler(w, ho)
	}
	var hs []slog.Handler
	if asService && osLog != nil {
		osLog.level.Set(cfg.LogLevel())
		hs = append(hs, osLog)
	} else {
		hs = append(hs, handler(stderr))
	}
	close = func() {}
	var fileErr error
	if cfg.LogToFile(asService) {
		lf, err := logfile.Open(cfg.LogPath(), logfile.Options{MaxBytes: int64(cfg.Log.MaxSizeMB) << 20, Keep: cfg.Log.MaxFiles})
		if err != nil {
			fileErr = err
		} else {
			hs = append(hs, handler(lf))
			close = func() { lf.Close() }
		}
	}
	log = slog.New(slog.NewMultiHandler(hs...))
	if fileErr != nil {
		// The till keeps working without its log file; say so where the
		// log still goes.
		log.Warn("log file unavailable; logging without it", "path", cfg.LogPath(), "err", fileErr)
	}
	return log, close
}

// osLogHandler writes log records to the OS service log through
// kardianos' service.Logger: the Windows event log, or syslog (which the
// journal collects under systemd). The OS log stamps time and severity
// itself, so a record becomes "message key=value …" at the matching
// severity: errors as errors, warnings as warnings, the rest as
// information.
type osLogHandler struct {
	level *slog.LevelVar
	out   *osLogWriter
	text  slog.Handler // writes the attributes only, into out
}

func newOSLogHandler(l service.Logger) *osLogHandler {
	w := &osLogWriter{log: l}
	lv := new(slog.LevelVar)
	return &osLogHandler{level: lv, out: w, text: slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug, // Enabled below decides
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
				return slog.Attr{}
			}
			return a
		},
	})}
}

func (h *osLogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *osLogHandler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.msg, h.out.lvl = r.Message, r.Level
	return h.text.Handle(ctx, r)
}

func (h *osLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &osLogHandler{level: h.level, out: h.out, text: h.text.WithAttrs(as)}
}

func (h *osLogHandler) WithGroup(name string) slog.Handler {
	return &osLogHandler{level: h.level, out: h.out, text: h.text.WithGroup(name)}
}

// osLogWriter receives one record's attributes from the text handler and
// sends message and attributes to the OS log. mu is held by Handle around
// the text handler's single Write, so msg and lvl belong to that record.
type osLogWriter struct {
	mu  sync.Mutex
	log service.Logger
	msg string
	lvl slog.Level
}

func (w *osLogWriter) Write(p []byte) (int, error) {
	text := w.msg
	if attrs := strings.TrimSuffix(string(p), "\n"); attrs != "" {
		text += " " + attrs
	}
	var err error
	switch {
	case w.lvl >= slog.LevelError:
		err = w.log.Error(text)
	case w.lvl >= slog.LevelWarn:
		err = w.log.Warning(text)
	default:
		err = w.log.Info(text)
	}
	return len(p), err
}
