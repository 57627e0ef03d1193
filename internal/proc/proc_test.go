package proc

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A program that exits before it listens is an error that quotes the end
// of its log, which outlives the test's temporary dir in the failure.
func TestStartListeningQuotesTheLog(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on this machine")
	}
	addr, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	for i := range 30 {
		fmt.Fprintf(&script, "echo line %d; ", i)
	}
	script.WriteString("echo 'listen: address already in use' >&2; exit 1")
	p := &Proc{Name: "prog", Bin: sh, Log: filepath.Join(t.TempDir(), "prog.log")}
	err = p.StartListening(context.Background(), 10*time.Second, addr, "-c", script.String())
	if err == nil {
		t.Fatal("a program that exited at once was taken as listening")
	}
	msg := err.Error()
	for _, want := range []string{"prog exited at its start", p.Log, "line 29", "listen: address already in use"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "line 13\n") || strings.Contains(msg, "=== start") {
		t.Errorf("error quotes more than the log's last 15 lines: %q", msg)
	}
}
