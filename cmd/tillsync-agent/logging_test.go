package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tillsync/tillsync/agent/config"
)

// osLog records what would reach the Windows event log or syslog: the OS
// log itself cannot be read back portably in a test.
type osLog struct {
	mu      sync.Mutex
	entries []string
}

func (l *osLog) add(sev string, v ...any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, sev+": "+fmt.Sprint(v...))
	return nil
}

func (l *osLog) Error(v ...any) error              { return l.add("error", v...) }
func (l *osLog) Warning(v ...any) error            { return l.add("warning", v...) }
func (l *osLog) Info(v ...any) error               { return l.add("info", v...) }
func (l *osLog) Errorf(f string, a ...any) error   { return l.add("error", fmt.Sprintf(f, a...)) }
func (l *osLog) Warningf(f string, a ...any) error { return l.add("warning", fmt.Sprintf(f, a...)) }
func (l *osLog) Infof(f string, a ...any) error    { return l.add("info", fmt.Sprintf(f, a...)) }
func (l *osLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.entries, "\n")
}
func (l *osLog) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.entries...)
}

func TestOSLogHandler(t *testing.T) {
	rec := &osLog{}
	h := newOSLogHandler(rec)
	log := slog.New(h)
	log.Debug("not shown at info")
	log.Info("agent running", "broker", "tcp://hub:1883", "scanner", "")
	log.With("store", "s1").WithGroup("uplink").Warn("hub unreachable", "attempt", 2)
	log.Error("cannot start", "err", "data dir /x: not writable")
	h.level.Set(slog.LevelDebug)
	log.Debug("now shown")
	want := []string{
		`info: agent running broker=tcp://hub:1883 scanner=""`,
		`warning: hub unreachable store=s1 uplink.attempt=2`,
		`error: cannot start err="data dir /x: not writable"`,
		`info: now shown`,
	}
	if got := rec.lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("OS log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func loadConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, probs, err := config.Load(config.Options{Path: p})
	if err != nil || len(probs) > 0 {
		t.Fatalf("load: %v %v", err, probs)
	}
	return c
}

// Where the log goes: as a service, the OS log and the file (unless
// log.file: false); in a terminal, stderr, and the file only when asked.
func TestNewLogger(t *testing.T) {
	for _, tc := range []struct {
		name      string
		log       string // the config's log section
		asService bool
		stderr    bool
		osLog     bool
		file      bool
	}{
		{"terminal", "", false, true, false, false},
		{"terminal with file", "log:\n  file: true\n", false, true, false, true},
		{"service", "", true, false, true, true},
		{"service without file", "log:\n  file: false\n", true, false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := loadConfig(t, "data_dir: "+dir+"\n"+tc.log)
			rec := &osLog{}
			var stderr bytes.Buffer
			log, closeLog := newLogger(cfg, tc.asService, newOSLogHandler(rec), &stderr)
			log.Debug("below the level")
			log.Info("agent running", "store", "s1")
			closeLog()
			file, _ := os.ReadFile(filepath.Join(dir, "logs", "agent.log"))
			for _, out := range []struct {
				name string
				want bool
				text string
			}{{"stderr", tc.stderr, stderr.String()}, {"OS log", tc.osLog, rec.String()}, {"file", tc.file, string(file)}} {
				if got := strings.Contains(out.text, "agent running") && strings.Contains(out.text, "store=s1"); got != out.want {
					t.Errorf("%s has the record: %v, want %v:\n%s", out.name, got, out.want, out.text)
				}
				if strings.Contains(out.text, "below the level") {
					t.Errorf("%s has a debug record at level info", out.name)
				}
			}
		})
	}
}

func TestNewLoggerJSONToFile(t *testing.T) {
	dir := t.TempDir()
	cfg := loadConfig(t, "data_dir: "+dir+"\nlog:\n  file: true\n  format: json\n  level: debug\n")
	var stderr bytes.Buffer
	log, closeLog := newLogger(cfg, false, nil, &stderr)
	log.Debug("dbg", "tx", "x1")
	closeLog()
	file, err := os.ReadFile(cfg.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{stderr.String(), string(file)} {
		if !strings.Contains(out, `"msg":"dbg"`) || !strings.Contains(out, `"tx":"x1"`) {
			t.Errorf("want a JSON debug record, got:\n%s", out)
		}
	}
}

// A log file that cannot be opened does not stop the agent: it says so
// where the log still goes.
func TestNewLoggerFileUnavailable(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "logs"), nil, 0o600); err != nil { // a file where the log dir would be
		t.Fatal(err)
	}
	cfg := loadConfig(t, "data_dir: "+dir+"\n")
	rec := &osLog{}
	log, closeLog := newLogger(cfg, true, newOSLogHandler(rec), os.Stderr)
	defer closeLog()
	log.Info("still logging")
	got := rec.String()
	if !strings.Contains(got, "warning: log file unavailable; logging without it") || !strings.Contains(got, "still logging") {
		t.Errorf("OS log:\n%s", got)
	}
}

// log.max_size_mb and log.max_files reach the file: past the size it
// rotates, and no more files are kept than asked.
func TestLogFileRotates(t *testing.T) {
	dir := t.TempDir()
	cfg := loadConfig(t, "data_dir: "+dir+"\nlog:\n  file: true\n  max_size_mb: 1\n  max_files: 2\n")
	log, closeLog := newLogger(cfg, false, nil, io.Discard)
	pad := strings.Repeat("x", 500)
	for i := range 5000 { // about 2.6 MB
		log.Info("record", "i", i, "pad", pad)
	}
	closeLog()
	files, err := filepath.Glob(cfg.LogPath() + "*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("log files %q, want agent.log, agent.log.1 and agent.log.2", files)
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.Size() > 1<<20 {
			t.Errorf("%s: %v, size over 1 MB", f, err)
		}
	}
	last, _ := os.ReadFile(cfg.LogPath())
	if !strings.Contains(string(last), "i=4999 ") {
		t.Error("agent.log does not end with the last record")
	}
}
