//go:build unix

package ledger

import (
	"io/fs"
	"os"
	"syscall"
)

// replaceOpen says a file can be renamed over while it is open and
// mapped: Compact holds the ledger's lock until its copy took its place.
const replaceOpen = true

// syncDir makes the directory's entries (a new file, a rename) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// sameOwner gives the file at path the owner and group of orig where
// they differ, as they do when root compacts the ledger of a hub that
// runs as its own user.
func sameOwner(path string, orig fs.FileInfo) error {
	want, ok := orig.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if got, ok := fi.Sys().(*syscall.Stat_t); ok && got.Uid == want.Uid && got.Gid == want.Gid {
		return nil
	}
	return os.Chown(path, int(want.Uid), int(want.Gid))
}
