package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// What mochi logs reaches the hub's log only when an operator can act on
// it, and never without a message.
func TestLevelFloor(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(levelFloor{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), slog.LevelWarn})
	for _, tc := range []struct {
		level slog.Level
		msg   string
		err   error
		want  string // "" for dropped
	}{
		{slog.LevelWarn, "", io.EOF, ""},
		{slog.LevelWarn, "", fmt.Errorf("read connection: %w", io.EOF), ""},
		{slog.LevelWarn, "", &net.OpError{Op: "read", Err: net.ErrClosed}, ""},
		{slog.LevelWarn, "", fmt.Errorf("connect: %w", packets.ErrBadUsernameOrPassword), ""},
		{slog.LevelWarn, "", errors.New("read connection: tls: bad certificate"), `msg="mqtt connection ended with an error" error="read connection: tls: bad certificate"`},
		{slog.LevelWarn, "client write error", io.EOF, `msg="client write error" error=EOF`},
		{slog.LevelInfo, "noise", nil, ""},
	} {
		buf.Reset()
		if tc.err != nil {
			log.Log(t.Context(), tc.level, tc.msg, "error", tc.err)
		} else {
			log.Log(t.Context(), tc.level, tc.msg)
		}
		got := strings.TrimSpace(buf.String())
		switch {
		case tc.want == "" && got != "":
			t.Errorf("%q %v: logged %s, want nothing", tc.msg, tc.err, got)
		case tc.want != "" && !strings.Contains(got, tc.want):
			t.Errorf("%q %v: logged %q, want %s", tc.msg, tc.err, got, tc.want)
		}
	}
}
