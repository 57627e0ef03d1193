//go:build !windows

package pki

import "io/fs"

// keyOpen reports whether a key file can be read by users other than its owner.
func keyOpen(fi fs.FileInfo) bool { return fi.Mode().Perm()&0o077 != 0 }
