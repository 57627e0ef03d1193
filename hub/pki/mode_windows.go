package pki

import "io/fs"

// keyOpen reports whether a key file can be read by users other than its
// owner; on Windows the file's ACL decides, which the mode does not show.
func keyOpen(fs.FileInfo) bool { return false }
