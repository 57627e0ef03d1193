//go:build unix

package broker

import (
	"io/fs"
	"os"
	"syscall"
)

// keepOwner gives f the owner and group of fi, as far as this user may
// (root: both; others: a group they are in); what it may not is left.
func keepOwner(f *os.File, fi fs.FileInfo) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	if f.Chown(int(st.Uid), int(st.Gid)) != nil {
		_ = f.Chown(-1, int(st.Gid))
	}
}
