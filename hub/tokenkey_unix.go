//go:build unix

package hub

import "io/fs"

// keyFileOpen reports whether a key file can be read by others than its owner.
func keyFileOpen(fi fs.FileInfo) bool { return fi.Mode().Perm()&0o077 != 0 }
