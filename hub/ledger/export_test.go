package ledger

import bolt "go.etcd.io/bbolt"

// SetAfterCopy makes Compact run fn on its copy after writing it and
// before checking it, so that a test can damage the copy.
func SetAfterCopy(o *CompactOptions, fn func(tmp string) error) { o.afterCopy = fn }

// MembersBucket is the bucket of members' lots, balances and statement
// indexes, and MemberBalanceKey a member's balance's key in it, for tests
// that damage a file.
var MembersBucket = bucketMembers

func MemberBalanceKey(member string) []byte { return balanceKey(nil, member) }

// SetUpgradeChunk sets how many keys a commit of the schema upgrade moves,
// and SetUpgradeStop after how many commits an upgrade stops as a crash
// would; each returns what puts it back.
func SetUpgradeChunk(n int) func() {
	old := upgradeChunk
	upgradeChunk = n
	return func() { upgradeChunk = old }
}

func SetUpgradeStop(n int) func() {
	old := upgradeStop
	upgradeStop = n
	return func() { upgradeStop = old }
}

// MemberIndexKey is the key of a member's statement entry seq in MembersBucket.
func MemberIndexKey(member string, seq uint64) []byte { return memberIndexKey(nil, member, seq) }

// PagesWritten is how many bytes of pages the store's commits have written
// since it was opened (bbolt's TxStats.PageAlloc), for benchmarks.
func PagesWritten(s *BoltStore) int64 {
	st := s.db.Stats()
	return st.TxStats.GetPageAlloc()
}

// JournalFill is how full the journal's leaf pages are: the bytes in use
// over the bytes they take.
func JournalFill(s *BoltStore) (float64, error) {
	var st bolt.BucketStats
	err := s.db.View(func(tx *bolt.Tx) error {
		st = tx.Bucket(bucketJournal).Stats()
		return nil
	})
	return float64(st.LeafInuse) / float64(max(st.LeafAlloc, 1)), err
}
