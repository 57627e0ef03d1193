//go:build !unix

package main

import (
	"context"
	"errors"
	"io"
)

func runDemo(context.Context, io.Writer, demoOptions) error {
	return errors.New("the demo simulates the scanner with a pseudo-terminal, which needs Linux or macOS; on Windows run tillsync-hub and tillsync-agent as shown in the README")
}
