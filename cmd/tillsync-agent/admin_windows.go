package main

import "golang.org/x/sys/windows"

// isAdmin reports whether this process may install and control services:
// an elevated administrator.
func isAdmin() bool { return windows.GetCurrentProcessToken().IsElevated() }

// adminHint says how to get the rights isAdmin checks for.
const adminHint = "run it from a prompt opened with Run as administrator"

// serviceUserSupported: on Windows the service runs as LocalSystem; another
// account would need its password stored with the service.
const serviceUserSupported = false
