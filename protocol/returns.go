package protocol

import "math/bits"

// ReturnedPoints is the share of a sale's points that the returns of
// returned (cumulative, minor units) of its amount take back, rounded down:
// ⌊points × returned / amount⌋. Returns are priced on the running total, so
// a return of everything gives back exactly points and the parts never add
// up to more; the points of one return are ReturnedPoints after it less the
// points reversed before it. The till and the hub both price returns with
// it. points, amount and returned must be non-negative and returned at most
// amount, amount > 0.
func ReturnedPoints(points, amount, returned int64) int64 {
	hi, lo := bits.Mul64(uint64(points), uint64(returned))
	q, _ := bits.Div64(hi, lo, uint64(amount))
	return int64(q)
}
