//go:build !unix

package hub

import "io/fs"

// keyFileOpen reports whether a key file can be read by others than its
// owner. Permission bits mean nothing here (Windows uses ACLs): the data
// dir's own protection applies.
func keyFileOpen(fs.FileInfo) bool { return false }
