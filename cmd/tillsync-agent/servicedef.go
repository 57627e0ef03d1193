package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/kardianos/service"
)

// The service as the OS knows it.
const (
	serviceName        = "tillsync-agent"
	serviceDisplayName = "tillsync agent"
	serviceDescription = "Loyalty points beside the till: the POS API, the barcode scanner, the outbox and its sync to the coalition hub"

	// restartDelay is the wait before the service manager starts the agent
	// again after it failed.
	restartDelay = 5 * time.Second
	// failureResetPeriod (seconds) is how long the agent must run without
	// failing before Windows counts failures from zero again. Windows
	// repeats the last recovery action for every failure beyond the list,
	// so with one action ("restart") it restarts the agent however often it
	// fails.
	failureResetPeriod = 24 * 60 * 60
)

// serviceSpec is what `install` registers.
type serviceSpec struct {
	// Exe is this binary, an absolute path.
	Exe string
	// Config is the config file, an absolute path.
	Config string
	// User is the account the service runs as on Linux and macOS; "" for
	// root (LocalSystem on Windows).
	User string
}

// serviceConfig is the service definition goos gets. It is one function
// for every OS, rather than a file per OS, so that a test on any machine
// can check what Windows, systemd and launchd are each given.
//
//   - The service runs `tillsync-agent run --config <file>`, starts at boot
//     and is restarted restartDelay after a failure: on Windows through
//     recovery actions, which are off unless set; under systemd through
//     Restart=always; under launchd through KeepAlive.
//   - Under systemd it starts once the network is up (network-online.target):
//     the agent works offline, but its first connection attempt then
//     succeeds instead of waiting for a backoff.
func serviceConfig(goos string, sp serviceSpec) (*service.Config, error) {
	sc := &service.Config{
		Name:        serviceName,
		DisplayName: serviceDisplayName,
		Description: serviceDescription,
		Executable:  sp.Exe,
		Arguments:   []string{"run", "--config", sp.Config},
		UserName:    sp.User,
		Option:      service.KeyValue{},
	}
	switch goos {
	case "windows":
		sc.Option["StartType"] = "automatic"
		sc.Option["OnFailure"] = "restart"
		sc.Option["OnFailureDelayDuration"] = restartDelay.String()
		sc.Option["OnFailureResetPeriod"] = failureResetPeriod // an int: kardianos ignores other types
	case "linux":
		sc.Dependencies = []string{"After=network-online.target", "Wants=network-online.target"}
		sc.Option["Restart"] = "always"
		unit, err := systemdUnit(sc)
		if err != nil {
			return nil, err
		}
		sc.Option["SystemdScript"] = unit
	case "darwin":
		sc.Option["KeepAlive"] = true
		sc.Option["RunAtLoad"] = true
	}
	return sc, nil
}

// systemdUnit renders the unit file the service gets under systemd.
//
// kardianos/service writes the SystemdScript option through its own small
// template engine. The unit given is already complete — it holds no
// template action — so what is installed is exactly this text, and the
// test checks exactly what a till gets.
func systemdUnit(sc *service.Config) (string, error) {
	for _, s := range append([]string{sc.Executable, sc.UserName, sc.Description}, append(sc.Arguments, sc.Dependencies...)...) {
		if strings.Contains(s, "{{") || strings.ContainsAny(s, "\r\n") {
			return "", fmt.Errorf("service definition: %q cannot be written into a systemd unit", s)
		}
	}
	var b strings.Builder
	b.WriteString("# Installed by `tillsync-agent install`; remove it with `tillsync-agent uninstall`.\n")
	b.WriteString("[Unit]\n")
	fmt.Fprintf(&b, "Description=%s\n", sc.Description)
	for _, d := range sc.Dependencies {
		b.WriteString(d + "\n")
	}
	// Never give up restarting: a till without its agent takes no points.
	b.WriteString("StartLimitIntervalSec=0\n")
	b.WriteString("\n[Service]\n")
	b.WriteString("Type=simple\n")
	args := []string{systemdArg(sc.Executable)}
	for _, a := range sc.Arguments {
		args = append(args, systemdArg(a))
	}
	fmt.Fprintf(&b, "ExecStart=%s\n", strings.Join(args, " "))
	if sc.UserName != "" {
		fmt.Fprintf(&b, "User=%s\n", sc.UserName)
	}
	fmt.Fprintf(&b, "Restart=%s\n", sc.Option["Restart"])
	fmt.Fprintf(&b, "RestartSec=%d\n", int(restartDelay/time.Second))
	// The agent stops within 2 s; this is the bound before SIGKILL.
	b.WriteString("TimeoutStopSec=10\n")
	b.WriteString("\n[Install]\n")
	b.WriteString("WantedBy=multi-user.target\n")
	return b.String(), nil
}

// systemdArg quotes one word of ExecStart= for systemd: % and $ would be
// expanded, and spaces or quotes would split or end the word.
func systemdArg(s string) string {
	s = strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
	if s != "" && !strings.ContainsAny(s, " \t\"'\\;") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// osLogHint says where goos keeps the service's log.
func osLogHint(goos string) string {
	switch goos {
	case "windows":
		return "Event Viewer > Windows Logs > Application, source " + serviceName
	case "linux":
		return "journalctl -u " + serviceName
	case "darwin":
		return `log show --last 1h --predicate 'process == "` + serviceName + `"'`
	}
	return "the system log"
}
