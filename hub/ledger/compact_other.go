//go:build !unix

package ledger

import "io/fs"

// replaceOpen says a file can be renamed over while it is open and
// mapped. On Windows it cannot: Compact closes the ledger, and so releases
// its lock, just before the rename. A hub that opens the file in that
// moment keeps it open, so the rename fails and the ledger stays as it
// was, with what that hub writes.
const replaceOpen = false

// syncDir does nothing: Windows has no way to sync a directory, and NTFS
// journals its entries.
func syncDir(string) error { return nil }

// sameOwner does nothing: a new file takes the directory's ACL.
func sameOwner(string, fs.FileInfo) error { return nil }
