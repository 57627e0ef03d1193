//go:build !unix

package broker

import (
	"io/fs"
	"os"
)

// keepOwner does nothing where files have no Unix owner: the file keeps
// the directory's permissions.
func keepOwner(*os.File, fs.FileInfo) {}
