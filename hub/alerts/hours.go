package alerts

import "time"

// HoursFor returns the opening hours that apply to a store: the first in
// hs that selects it; nil (always open) when none does.
func HoursFor(hs []Hours, store, partner string) *Hours {
	for i := range hs {
		if hs[i].Stores.Match(store, partner) {
			return &hs[i]
		}
	}
	return nil
}

// OpenSince reports whether the store is open at t, and since when: the
// start of the open span t falls in (a span ending at midnight runs on
// into one starting at midnight the next day). Nil hours are always open,
// since the beginning of time.
func (h *Hours) OpenSince(t time.Time) (time.Time, bool) {
	if h == nil {
		return time.Time{}, true
	}
	local := t.In(h.Location)
	day := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, h.Location)
	m := local.Hour()*60 + local.Minute()
	for _, s := range h.Days[local.Weekday()] {
		if m < s.Start || m >= s.End {
			continue
		}
		start := s.Start
		// Follow the span back over midnights.
		for i := 0; start == 0 && i < 7; i++ {
			prev := day.AddDate(0, 0, -1)
			found := false
			for _, p := range h.Days[prev.Weekday()] {
				if p.End == 24*60 {
					day, start, found = prev, p.Start, true
					break
				}
			}
			if !found {
				break
			}
		}
		return minutesInto(day, start, h.Location), true
	}
	return time.Time{}, false
}

// minutesInto is the wall-clock time m minutes after day's midnight in loc
// (so that a day with a DST change still opens at the written time).
func minutesInto(day time.Time, m int, loc *time.Location) time.Time {
	return time.Date(day.Year(), day.Month(), day.Day(), m/60, m%60, 0, 0, loc)
}
