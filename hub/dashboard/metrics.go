package dashboard

import "time"

// Stores returns the stores table as the dashboard shows it, most urgent
// first, then by id, and when it was built: the view every page shares,
// built at most once per half Tick, so a Prometheus scrape (the hub's
// /metrics) costs no more than a dashboard refresh.
func (d *Dashboard) Stores() ([]StoreRow, time.Time, error) {
	s := d.state()
	return s.stores, s.at, s.err
}
