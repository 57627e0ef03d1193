package perf

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// rss returns a process's resident memory now and at its peak (VmRSS and
// VmHWM), in bytes.
func rss(pid int) (now, peak int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if k == "VmRSS" {
			now = n << 10
		} else {
			peak = n << 10
		}
	}
	if now == 0 {
		return 0, 0, fmt.Errorf("perf: no VmRSS in /proc/%d/status", pid)
	}
	return now, peak, nil
}
