package httpapi

// Patterns lists every route's pattern, so that tests can check they
// cover each.
func Patterns() []string {
	var out []string
	for _, r := range (&api{}).routes() {
		out = append(out, r.pattern)
	}
	return out
}
