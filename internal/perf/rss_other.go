//go:build !linux

package perf

import "errors"

// rss would read a process's resident memory; only Linux's /proc is read.
func rss(int) (now, peak int64, err error) {
	return 0, 0, errors.New("perf: reading a process's memory needs Linux (/proc)")
}
