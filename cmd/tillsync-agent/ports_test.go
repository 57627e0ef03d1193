package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/agent/scanner"
)

// fakePorts is what a till with a scanner, an adapter cable and a built-in
// port could list.
var fakePorts = []scanner.PortInfo{
	{Name: "/dev/ttyACM0", USB: true, VID: "0c2e", PID: "0b61", SerialNumber: "22143B0042", Manufacturer: "Honeywell", Product: "Xenon 1900 Area-Imaging Scanner"},
	{Name: "/dev/ttyUSB0", USB: true, VID: "0403", PID: "6001", SerialNumber: "A50285BI", Manufacturer: "FTDI", Product: "FT232R USB UART"},
	{Name: "/dev/ttyACM1", USB: true, VID: "2341", PID: "0043", Manufacturer: "Arduino\t(www.arduino.cc)"},
	{Name: "/dev/ttyS0"},
}

// runPorts runs `ports` in-process over list.
func runPorts(t *testing.T, list func() ([]scanner.PortInfo, error), args ...string) (string, error) {
	t.Helper()
	c := newPortsCmd(list)
	var out bytes.Buffer
	c.SetOut(&out)
	c.SetErr(&out)
	c.SetArgs(args)
	err := c.Execute()
	return out.String(), err
}

func TestPortsTable(t *testing.T) {
	t.Parallel()
	out, err := runPorts(t, func() ([]scanner.PortInfo, error) { return fakePorts, nil })
	if err != nil {
		t.Fatal(err)
	}
	want := `PORT          USB ID     SERIAL      VENDOR                    PRODUCT
/dev/ttyACM0  0c2e:0b61  22143B0042  Honeywell (Metrologic)    Xenon 1900 Area-Imaging Scanner
/dev/ttyUSB0  0403:6001  A50285BI    FTDI (USB-serial bridge)  FT232R USB UART
/dev/ttyACM1  2341:0043  -           Arduino (www.arduino.cc)  -
/dev/ttyS0    -          -           -                         -

Try a scanner with: tillsync-agent scan-test --usb VID:PID[:SERIAL]
`
	// An unknown vendor shows the device's manufacturer string, its tab
	// turned into a space so the columns hold.
	if out != want {
		t.Errorf("ports printed:\n%s\nwant:\n%s", out, want)
	}
}

func TestPortsJSON(t *testing.T) {
	t.Parallel()
	out, err := runPorts(t, func() ([]scanner.PortInfo, error) { return fakePorts, nil }, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json printed no JSON array (%v):\n%s", err, out)
	}
	if len(got) != len(fakePorts) {
		t.Fatalf("%d ports in JSON, want %d", len(got), len(fakePorts))
	}
	first, bridge, plain := got[0], got[1], got[3]
	if first["name"] != "/dev/ttyACM0" || first["vid"] != "0c2e" || first["pid"] != "0b61" || first["serial_number"] != "22143B0042" ||
		first["vendor"] != "Honeywell (Metrologic)" || first["usb"] != true || first["bridge"] != nil {
		t.Errorf("scanner port = %v", first)
	}
	if bridge["bridge"] != true || bridge["vendor"] != "FTDI (USB-serial bridge)" {
		t.Errorf("bridge port = %v", bridge)
	}
	if plain["usb"] != false || plain["vid"] != nil || plain["vendor"] != nil {
		t.Errorf("built-in port = %v", plain)
	}
}

func TestPortsNoneAndFailure(t *testing.T) {
	t.Parallel()
	out, err := runPorts(t, func() ([]scanner.PortInfo, error) { return nil, nil })
	if err != nil || !strings.HasPrefix(out, "No serial ports found.") || strings.Count(out, "\n") != 1 {
		t.Errorf("with no ports: (%q, %v)", out, err)
	}
	out, err = runPorts(t, func() ([]scanner.PortInfo, error) { return nil, nil }, "--json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("--json with no ports: (%q, %v), want []", out, err)
	}
	_, err = runPorts(t, func() ([]scanner.PortInfo, error) { return nil, errors.New("sysfs unreadable") })
	if err == nil || !strings.Contains(err.Error(), "cannot list serial ports: sysfs unreadable") {
		t.Errorf("enumerator failure gave %v", err)
	}
}

// The real binary lists this machine's ports, whatever they are.
func TestPortsBinary(t *testing.T) {
	t.Parallel()
	out := run(t, "ports").OK(t)
	if !strings.HasPrefix(out, "PORT ") && !strings.HasPrefix(out, "No serial ports found.") {
		t.Errorf("ports printed:\n%s", out)
	}
	var list []any
	if err := json.Unmarshal([]byte(run(t, "ports", "--json").OK(t)), &list); err != nil {
		t.Errorf("ports --json: %v", err)
	}
	run(t, "ports", "extra").OneLine(t, 2, `"extra"`, "tillsync-agent ports --help")
	out = run(t, "ports", "--help").OK(t)
	for _, w := range []string{"Usage:", "tillsync-agent ports", "--json", "Examples:", "VID:PID"} {
		if !strings.Contains(out, w) {
			t.Errorf("ports --help does not mention %q", w)
		}
	}
}
