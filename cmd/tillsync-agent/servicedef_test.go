package main

// What each OS's service manager is given by `install`, checked here on any
// machine: Windows recovery actions, the systemd unit as it is written, the
// launchd options. Nothing is installed.

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kardianos/service"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var spec = serviceSpec{Exe: "/usr/local/bin/tillsync-agent", Config: "/etc/tillsync/agent.yaml", User: "tillsync"}

func TestServiceConfigAllOSes(t *testing.T) {
	for _, goos := range []string{"windows", "linux", "darwin", "freebsd"} {
		sc, err := serviceConfig(goos, spec)
		if err != nil {
			t.Fatalf("%s: %v", goos, err)
		}
		if sc.Name != "tillsync-agent" || sc.Executable != spec.Exe || sc.UserName != spec.User || sc.Description == "" || sc.DisplayName == "" {
			t.Errorf("%s: %+v", goos, sc)
		}
		if want := []string{"run", "--config", spec.Config}; !reflect.DeepEqual(sc.Arguments, want) {
			t.Errorf("%s: arguments %q, want %q", goos, sc.Arguments, want)
		}
		if osLogHint(goos) == "" {
			t.Errorf("%s: no hint where the log is", goos)
		}
	}
}

// Windows leaves recovery off unless asked: the options must be there, of
// the types kardianos reads (it ignores a value of another type).
func TestServiceConfigWindows(t *testing.T) {
	sc, err := serviceConfig("windows", serviceSpec{Exe: `C:\Program Files\tillsync\tillsync-agent.exe`, Config: `C:\ProgramData\tillsync\agent.yaml`})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := sc.Option["OnFailure"].(string); !ok || v != "restart" {
		t.Errorf("OnFailure = %#v, want \"restart\"", sc.Option["OnFailure"])
	}
	if v, ok := sc.Option["OnFailureDelayDuration"].(string); !ok {
		t.Errorf("OnFailureDelayDuration = %#v, want a duration string", sc.Option["OnFailureDelayDuration"])
	} else if d, err := time.ParseDuration(v); err != nil || d != restartDelay {
		t.Errorf("OnFailureDelayDuration %q: %v, want %s", v, err, restartDelay)
	}
	if v, ok := sc.Option["OnFailureResetPeriod"].(int); !ok || v <= 0 {
		t.Errorf("OnFailureResetPeriod = %#v, want a positive int (seconds)", sc.Option["OnFailureResetPeriod"])
	}
	if v, ok := sc.Option["StartType"].(string); !ok || v != "automatic" {
		t.Errorf("StartType = %#v, want \"automatic\"", sc.Option["StartType"])
	}
	if _, ok := sc.Option["SystemdScript"]; ok {
		t.Error("Windows got a systemd unit")
	}
}

func TestServiceConfigDarwin(t *testing.T) {
	sc, err := serviceConfig("darwin", spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"KeepAlive", "RunAtLoad"} {
		if v, ok := sc.Option[k].(bool); !ok || !v {
			t.Errorf("%s = %#v, want true", k, sc.Option[k])
		}
	}
}

// The unit systemd gets, exactly as written (testdata/tillsync-agent.service;
// go test -run TestSystemdUnit -update rewrites it).
func TestSystemdUnit(t *testing.T) {
	sc, err := serviceConfig("linux", spec)
	if err != nil {
		t.Fatal(err)
	}
	unit, ok := sc.Option["SystemdScript"].(string)
	if !ok {
		t.Fatalf("SystemdScript = %#v, want the unit", sc.Option["SystemdScript"])
	}
	golden := filepath.Join("testdata", "tillsync-agent.service")
	if *update {
		if err := os.WriteFile(golden, []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if unit != string(want) {
		t.Errorf("unit:\n%s\nwant (%s):\n%s", unit, golden, want)
	}

	// What matters, line by line, whatever the golden file says.
	lines := map[string]bool{}
	for _, l := range strings.Split(unit, "\n") {
		lines[l] = true
	}
	for _, l := range []string{
		"ExecStart=/usr/local/bin/tillsync-agent run --config /etc/tillsync/agent.yaml",
		"Restart=always",
		"RestartSec=5",
		"User=tillsync",
		"After=network-online.target",
		"Wants=network-online.target",
		"WantedBy=multi-user.target",
	} {
		if !lines[l] {
			t.Errorf("unit lacks %q:\n%s", l, unit)
		}
	}
	// kardianos passes the script through its template engine: with no
	// action in it, what is installed is exactly this text.
	if strings.Contains(unit, "{{") {
		t.Error("unit contains a template action")
	}
}

func TestSystemdUnitQuoting(t *testing.T) {
	sc, err := serviceConfig("linux", serviceSpec{Exe: "/opt/till sync/tillsync-agent", Config: `/etc/tillsync/100% "main" $HOME.yaml`})
	if err != nil {
		t.Fatal(err)
	}
	unit := sc.Option["SystemdScript"].(string)
	want := `ExecStart="/opt/till sync/tillsync-agent" run --config "/etc/tillsync/100%% \"main\" $$HOME.yaml"` + "\n"
	if !strings.Contains(unit, want) {
		t.Errorf("unit:\n%s\nwant the line\n%s", unit, want)
	}
	if strings.Contains(unit, "User=") {
		t.Errorf("no --user, yet the unit names one:\n%s", unit)
	}
	for _, bad := range []string{"/etc/{{Name}}.yaml", "/etc/a\nExecStartPre=/bin/sh"} {
		if _, err := serviceConfig("linux", serviceSpec{Exe: spec.Exe, Config: bad}); err == nil {
			t.Errorf("config path %q accepted into the unit", bad)
		}
	}
}

// kardianos accepts the definition on this machine (it installs nothing
// until asked to).
func TestServiceConfigAccepted(t *testing.T) {
	sc, err := serviceConfig("linux", spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := service.New(noProgram{}, sc); err != nil {
		t.Errorf("service.New: %v", err)
	}
}
