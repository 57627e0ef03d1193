package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// RecentEntries returns up to limit journal entries of store, newest
// first, found among the last scan entries of the journal (the whole
// journal when scan <= 0). The journal has no index by store; the bound
// keeps a look at a quiet store in a busy coalition cheap, at the price of
// finding none of its entries once scan others came after them. Entries
// are matched on their stored bytes before they are decoded (ids need no
// escaping in JSON), so the entries of other stores cost a comparison.
func (s *BoltStore) RecentEntries(store string, limit, scan int) ([]Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	needle := []byte(`,"store":"` + store + `","terminal":`)
	var out []Entry
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJournal).Cursor()
		n := 0
		for k, v := c.Last(); k != nil && len(out) < limit && (scan <= 0 || n < scan); k, v = c.Prev() {
			n++
			if !bytes.Contains(v, needle) {
				continue
			}
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("journal entry %x: %w", k, err)
			}
			if e.Store == store {
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: recent entries of %s: %w", store, err)
	}
	return out, nil
}
