package ledger

// SetAfterCopy makes Compact run fn on its copy after writing it and
// before checking it, so that a test can damage the copy.
func SetAfterCopy(o *CompactOptions, fn func(tmp string) error) { o.afterCopy = fn }
