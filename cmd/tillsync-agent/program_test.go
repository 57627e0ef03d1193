package main

// The service program (what kardianos/service starts and stops) with a
// real agent on a temporary data dir: Start returns at once, Stop returns
// within the 2 s the service manager allows, and afterwards the outbox is
// closed — it opens again, with what the agent accepted in it.

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/outbox"
	"github.com/tillsync/tillsync/internal/testkit"
)

func testLogger() (*slog.Logger, *testkit.Buffer) {
	var buf testkit.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

func TestProgramStartStop(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log, logs := testLogger()
	a, err := agent.New(agent.Options{
		DataDir: dir, Broker: "tcp://" + testkit.FreePort(t), // no hub: the agent works offline
		Store: "s1", Terminal: "t1", Partner: "p1", POSListener: l, Logger: log,
	})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	p := &program{run: a.Run, log: log, stopWait: stopWait, exit: func(code int) { t.Errorf("exit(%d) called", code) }}

	done := make(chan error, 1)
	go func() { done <- p.Start(nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Start did not return at once")
	}

	pos := "http://" + l.Addr().String()
	testkit.WaitFor(t, 10*time.Second, "the POS API to answer", func() bool {
		resp, err := http.Get(pos + "/v1/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	resp, err := http.Post(pos+"/v1/earn", "application/json", strings.NewReader(`{"member":"M1001","amount":2500,"currency":"EUR","receipt":"R-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("earn: %s", resp.Status)
	}

	begin := time.Now()
	if err := p.Stop(nil); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if d := time.Since(begin); d > stopWait {
		t.Errorf("Stop took %s, more than the %s the service manager allows", d, stopWait)
	}
	if strings.Contains(logs.String(), "did not stop") {
		t.Errorf("the agent did not stop in time:\n%s", logs)
	}

	// Closed: bbolt's file lock is free (Open would time out otherwise),
	// and the earn the POS was told "accepted" is in it.
	ob, err := outbox.Open(filepath.Join(dir, agent.OutboxFile), outbox.Options{Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatalf("reopen the outbox after Stop: %v", err)
	}
	defer ob.Close()
	if n, _, err := ob.Stats(); err != nil || n != 1 {
		t.Errorf("outbox after Stop: %d unsynced (err %v), want the 1 earn", n, err)
	}
	if _, err := http.Get(pos + "/v1/health"); err == nil {
		t.Error("the POS API still answers after Stop")
	}
}

// An agent that does not stop in time is left behind, said in the log:
// the service manager gets its answer within stopWait.
func TestProgramStopTimeout(t *testing.T) {
	log, logs := testLogger()
	release := make(chan struct{})
	defer close(release)
	p := &program{
		run:      func(context.Context) error { <-release; return nil }, // ignores ctx
		log:      log,
		stopWait: 50 * time.Millisecond,
		exit:     func(code int) { t.Errorf("exit(%d) called", code) },
	}
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Stop(nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Stop: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop waits for an agent that does not stop")
	}
	if !strings.Contains(logs.String(), "did not stop within") {
		t.Errorf("log does not say the agent did not stop:\n%s", logs)
	}
}

// An agent that stops on its own (its POS API gone) exits non-zero, so
// that the service manager restarts it rather than it look alive.
func TestProgramExitsOnFailure(t *testing.T) {
	log, logs := testLogger()
	exited := make(chan int, 1)
	p := &program{
		run:      func(context.Context) error { return errors.New("pos api: listener closed") },
		log:      log,
		stopWait: stopWait,
		exit:     func(code int) { exited <- code },
	}
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code == 0 {
			t.Error("exit(0) after a failure: the service manager would not restart it")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit after the agent failed")
	}
	if !strings.Contains(logs.String(), "listener closed") {
		t.Errorf("log does not say why:\n%s", logs)
	}
}

func TestProgramStopWithoutStart(t *testing.T) {
	p := &program{stopWait: stopWait}
	if err := p.Stop(nil); err != nil {
		t.Errorf("Stop before Start: %v", err)
	}
}
