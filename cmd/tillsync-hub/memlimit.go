package main

import (
	"regexp"
	"strconv"

	"github.com/tillsync/tillsync/internal/cli"
)

// A hub's memory is mostly its tills' connections, and Go's collector lets
// the heap grow to twice what is live before it collects. On a machine
// with a memory budget the operator says so with --memory-limit, and the
// collector then works harder as the hub nears it instead of growing past
// it (runtime/debug.SetMemoryLimit, what GOMEMLIMIT sets). It is a soft
// limit: what is live is never given up, so a limit below the live
// memory costs collector time (at most about half the CPU), not
// transactions. docs/performance.md (scenario 5) has what it does for
// 10,000 TLS tills.

// minMemoryLimit is the smallest --memory-limit taken: below it the hub
// would spend its time collecting.
const minMemoryLimit = 64 << 20

var memoryLimitRE = regexp.MustCompile(`^([0-9]+)(B|KiB|MiB|GiB|TiB)$`)

// parseMemoryLimit reads --memory-limit: a size in GOMEMLIMIT's units
// (900MiB, 2GiB), or "" for none of the hub's own (GOMEMLIMIT, if set,
// stays in force). It returns 0 for "".
func parseMemoryLimit(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	m := memoryLimitRE.FindStringSubmatch(s)
	if m == nil {
		return 0, cli.Usagef("--memory-limit %q: want a size such as 900MiB or 2GiB (units B, KiB, MiB, GiB, TiB)", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	shift := map[string]uint{"B": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}[m[2]]
	if err != nil || n > (1<<62)>>shift {
		return 0, cli.Usagef("--memory-limit %q: too large", s)
	}
	n <<= shift
	if n < minMemoryLimit {
		return 0, cli.Usagef("--memory-limit %s: want at least 64MiB; below that the hub would spend its time collecting garbage", s)
	}
	return n, nil
}
