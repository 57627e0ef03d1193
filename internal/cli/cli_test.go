package cli_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/tillsync/tillsync/internal/cli"
)

// mainArgsEnv, when set, makes the test binary run cli.Main on a small
// command tree with these (space-separated) arguments instead of the tests,
// so TestMainExit can see the real exit status and stderr.
const mainArgsEnv = "TILLSYNC_CLI_TEST_MAIN_ARGS"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(mainArgsEnv); ok {
		root := fakeRoot()
		root.SetArgs(strings.Fields(args))
		cli.Main(root) // exits
	}
	os.Exit(m.Run())
}

func fakeRoot() *cobra.Command {
	root := &cobra.Command{Use: "fake", Version: "v0"}
	var x string
	ok := &cobra.Command{Use: "ok", Args: cobra.NoArgs, RunE: func(*cobra.Command, []string) error { return nil }}
	ok.Flags().StringVar(&x, "x", "", "a flag")
	ok.Flags().Int64("n", 0, "a number")
	ok.Flags().Duration("d", 0, "a duration")
	ok.Flags().Bool("b", false, "a switch")
	grp := &cobra.Command{Use: "grp"}
	sub := &cobra.Command{Use: "sub", RunE: func(*cobra.Command, []string) error { return nil }}
	sub.Flags().StringVar(&x, "x", "", "a flag")
	grp.AddCommand(sub)
	root.AddCommand(ok, grp,
		&cobra.Command{Use: "fail", RunE: func(*cobra.Command, []string) error {
			return errors.New("first line\nsecond\tline")
		}},
		&cobra.Command{Use: "usage", RunE: func(*cobra.Command, []string) error { return cli.Usagef("--x is required") }},
		&cobra.Command{Use: "wrapped", RunE: func(*cobra.Command, []string) error {
			return fmt.Errorf("outer: %w", cli.Usagef("inner"))
		}},
		&cobra.Command{Use: "two", Args: cobra.ExactArgs(2), RunE: func(*cobra.Command, []string) error { return nil }},
	)
	return root
}

func TestMainExit(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args string
		code int
		line string // stderr without the final newline; "" for none
	}{
		{"ok", 0, ""},
		{"ok --x 1", 0, ""},
		{"fail", 1, "fake: first line second line"},
		{"usage", 2, "fake: --x is required"},
		{"wrapped", 2, "fake: outer: inner"},
		{"ok --nope", 2, "fake: unknown flag: --nope (see fake ok --help)"},
		{"ok --x", 2, "fake: flag needs an argument: --x (see fake ok --help)"},
		{"ok extra", 2, `fake: unknown command "extra" for "fake ok" (see fake ok --help)`},
		{"two a", 2, "fake: accepts 2 arg(s), received 1 (see fake two --help)"},
		{"bogus", 2, `fake: unknown command "bogus" for "fake" (see fake --help)`},
		{"fai", 2, `fake: unknown command "fai" for "fake" Did you mean this? fail (see fake --help)`},
		// A value its flag's type refuses is explained in words, not Go's.
		{"ok --n lots", 2, `fake: --n "lots": want a whole number (see fake ok --help)`},
		{"ok --n 99999999999999999999", 2, `fake: --n "99999999999999999999": out of range (see fake ok --help)`},
		{"ok --d soon", 2, `fake: --d "soon": want a duration such as 30s, 15m or 24h (see fake ok --help)`},
		{"ok --b=maybe", 2, `fake: --b "maybe": want true or false (see fake ok --help)`},
		// A mistyped subcommand is the mistake, not the flag after it.
		{"grp sbu --x 1", 2, `fake: unknown command "sbu" for "fake grp"; did you mean "sub"? (see fake grp --help)`},
		{"grp --x 1", 2, "fake: unknown flag: --x (see fake grp --help)"},
	} {
		t.Run(tc.args, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(exe)
			cmd.Env = append(os.Environ(), mainArgsEnv+"="+tc.args)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, stderr.String())
			}
			want := tc.line
			if want != "" {
				want += "\n"
			}
			if stderr.String() != want {
				t.Errorf("stderr %q, want %q", stderr.String(), want)
			}
		})
	}
}

func TestUsagef(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", cli.Usagef("--%s is required", "store"))
	var ue *cli.UsageError
	if !errors.As(err, &ue) {
		t.Fatalf("errors.As(%v, *UsageError) = false", err)
	}
	if ue.Error() != "--store is required" {
		t.Errorf("Error() = %q", ue.Error())
	}
	base := errors.New("base")
	if !errors.Is(&cli.UsageError{Err: base}, base) {
		t.Error("UsageError does not unwrap to its Err")
	}
}

func TestLogger(t *testing.T) {
	for _, tc := range []struct {
		level, format string
		wantErr       []string // nil: no error
		debug         bool     // whether debug records are written
	}{
		{"info", "text", nil, false},
		{"debug", "text", nil, true},
		{"DEBUG", "json", nil, true},
		{"warn", "json", nil, false},
		{"error", "text", nil, false},
		{"loud", "text", []string{"--log-level", `"loud"`, "debug, info, warn or error"}, false},
		{"", "text", []string{"--log-level"}, false},
		{"info", "xml", []string{"--log-format", `"xml"`, "text or json"}, false},
		{"info", "", []string{"--log-format"}, false},
	} {
		t.Run(tc.level+"/"+tc.format, func(t *testing.T) {
			var buf bytes.Buffer
			f := cli.LogFlags{Level: tc.level, Format: tc.format}
			log, err := f.Logger(&buf)
			if tc.wantErr != nil {
				var ue *cli.UsageError
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want a *UsageError", err)
				}
				if log != nil {
					t.Error("got a logger along with the error")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("dbg")
			log.Error("boom", "store", "s1")
			out := buf.String()
			if got := strings.Contains(out, "dbg"); got != tc.debug {
				t.Errorf("debug record written = %v, want %v:\n%s", got, tc.debug, out)
			}
			if !strings.Contains(out, "boom") {
				t.Errorf("error record missing:\n%s", out)
			}
			if tc.format == "json" {
				for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
					if !json.Valid([]byte(l)) {
						t.Errorf("not JSON: %s", l)
					}
				}
			}
		})
	}
}

func TestLogFlagsAdd(t *testing.T) {
	var f cli.LogFlags
	c := &cobra.Command{Use: "x"}
	f.Add(c)
	if err := c.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if f.Level != "info" || f.Format != "text" {
		t.Errorf("defaults %+v, want info/text", f)
	}
	if err := c.ParseFlags([]string{"--log-level", "debug", "--log-format", "json"}); err != nil {
		t.Fatal(err)
	}
	if f.Level != "debug" || f.Format != "json" {
		t.Errorf("parsed %+v, want debug/json", f)
	}
}

func TestListen(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		l, err := cli.Listen("POS API", "127.0.0.1:0", "--pos-listen")
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	})
	t.Run("busy", func(t *testing.T) {
		held, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		addr := held.Addr().String()
		l, err := cli.Listen("POS API", addr, "--pos-listen")
		if err == nil {
			l.Close()
			t.Fatalf("Listen on %s, which the test holds, succeeded", addr)
		}
		var ue *cli.UsageError
		if errors.As(err, &ue) {
			t.Errorf("a busy port is not a usage mistake: %v", err)
		}
		msg := err.Error()
		for _, w := range []string{"POS API address " + addr, inUse(), "--pos-listen"} {
			if !strings.Contains(msg, w) {
				t.Errorf("%q does not mention %q", msg, w)
			}
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("%q is not one line", msg)
		}
	})
	for _, addr := range []string{"nonsense", "127.0.0.1", "", "tcp://127.0.0.1:80"} {
		t.Run("bad "+addr, func(t *testing.T) {
			l, err := cli.Listen("MQTT", addr, "--mqtt-listen")
			if err == nil {
				l.Close()
				t.Fatalf("Listen(%q) succeeded", addr)
			}
			var ue *cli.UsageError
			if !errors.As(err, &ue) {
				t.Errorf("err = %v, want a *UsageError", err)
			}
			for _, w := range []string{fmt.Sprintf("%q", addr), "host:port", "--mqtt-listen"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("not ours", func(t *testing.T) {
		// Well formed, but an address (TEST-NET-1) no interface here has.
		const addr = "192.0.2.1:8080"
		l, err := cli.Listen("HTTP API", addr, "--http-listen")
		if err == nil {
			l.Close()
			t.Skipf("this machine can listen on %s", addr)
		}
		for _, w := range []string{"HTTP API address " + addr, "--http-listen"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q does not mention %q", err, w)
			}
		}
	})
}

func TestDataDir(t *testing.T) {
	t.Run("created", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		if err := cli.DataDir(dir, "--data-dir"); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Fatalf("stat %s: %v", dir, err)
		}
		left, _ := os.ReadDir(dir)
		if len(left) != 0 {
			t.Errorf("the write check left %d file(s) behind", len(left))
		}
		// An existing dir is fine too.
		if err := cli.DataDir(dir, "--data-dir"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		err := cli.DataDir("", "--data-dir")
		var ue *cli.UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--data-dir") {
			t.Errorf("err = %v, want a *UsageError naming --data-dir", err)
		}
	})
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "sub")} {
		t.Run("file in the way "+filepath.Base(dir), func(t *testing.T) {
			err := cli.DataDir(dir, "--data-dir")
			if err == nil {
				t.Fatal("DataDir succeeded with a file in the way")
			}
			var ue *cli.UsageError
			if errors.As(err, &ue) {
				t.Errorf("an unusable dir is not a usage mistake: %v", err)
			}
			for _, w := range []string{"data dir " + dir, "cannot be created", "--data-dir"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestDefaultDataDir(t *testing.T) {
	a, h := cli.DefaultDataDir("agent"), cli.DefaultDataDir("hub")
	if a == h || !filepath.IsAbs(a) || filepath.Base(a) != "agent" || filepath.Base(h) != "hub" {
		t.Errorf("DefaultDataDir: agent %q, hub %q", a, h)
	}
}

// inUse is how Listen describes a busy port; Windows reports the bind error
// in its own words, which syscall.EADDRINUSE does not match.
func inUse() string {
	if runtime.GOOS == "windows" {
		return ""
	}
	return "already in use"
}
