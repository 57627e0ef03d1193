//go:build unix

package main

import "os"

// isAdmin reports whether this process may install and control services.
func isAdmin() bool { return os.Geteuid() == 0 }

// adminHint says how to get the rights isAdmin checks for.
const adminHint = "run it as root (sudo)"

// serviceUserSupported: on Linux and macOS the service may run as another
// account (--user).
const serviceUserSupported = true
