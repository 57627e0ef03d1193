package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillsync/tillsync/protocol"
)

// registry is the coalition model as Apply needs it: loaded from the file
// after every change and read without locks by the hot path.
type registry struct {
	coalition Coalition
	// pointValue is the coalition's point value in millionths of a minor unit.
	pointValue int64
	partners   map[string]Partner
	stores     map[string]StoreInfo
	// rules are each partner's versions, oldest first.
	rules map[string][]protocol.RuleSet
	// periods are the closed settlement periods, oldest first; closedTo is
	// the last one's To (0 when none).
	periods  []Period
	closedTo Day
}

// periodOf names the closed period holding day d, which is before closedTo.
func (r *registry) periodOf(d Day) string {
	for _, p := range r.periods {
		if d >= p.From && d < p.To {
			return PeriodID(p.From, p.To)
		}
	}
	// Before the first closed period: it has no id of its own.
	return ".." + r.periods[0].From.String()
}

// loadRegistry reads the registry buckets.
func loadRegistry(tx *bolt.Tx) (*registry, error) {
	r := &registry{
		partners: make(map[string]Partner),
		stores:   make(map[string]StoreInfo),
		rules:    make(map[string][]protocol.RuleSet),
	}
	if v := tx.Bucket(bucketCoalition).Get(coalitionKey); v != nil {
		if err := json.Unmarshal(v, &r.coalition); err != nil {
			return nil, fmt.Errorf("coalition settings: %w", err)
		}
		r.pointValue, _ = protocol.ParsePointValue(r.coalition.PointValue, r.coalition.Currency)
	}
	err := tx.Bucket(bucketPartners).ForEach(func(k, v []byte) error {
		var p Partner
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("partner %s: %w", k, err)
		}
		r.partners[p.ID] = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketStores).ForEach(func(k, v []byte) error {
		var s StoreInfo
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("store %s: %w", k, err)
		}
		r.stores[s.ID] = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Keys are partner, 0x00, 8-byte version: each partner's versions are
	// contiguous and in order.
	err = tx.Bucket(bucketRules).ForEach(func(k, v []byte) error {
		var rs protocol.RuleSet
		if err := json.Unmarshal(v, &rs); err != nil {
			return fmt.Errorf("rules %q: %w", k, err)
		}
		r.rules[rs.Partner] = append(r.rules[rs.Partner], rs)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketPeriods).ForEach(func(k, v []byte) error {
		var p Period
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("period %x: %w", k, err)
		}
		r.periods = append(r.periods, p)
		r.closedTo = p.To
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// refresh reloads the registry after a change was committed. Callers hold s.mu.
func (s *BoltStore) refresh() error {
	return s.db.View(func(tx *bolt.Tx) error {
		r, err := loadRegistry(tx)
		if err == nil {
			s.reg.Store(r)
		}
		return err
	})
}

// admin runs fn in a write transaction and reloads the registry after it.
// It holds s.mu so that no Apply runs with a registry older than the file.
func (s *BoltStore) admin(op string, fn func(tx *bolt.Tx) error) error {
	return s.adminOf(op, fn, true)
}

// enrollAdmin is admin for a change that leaves the registry (coalition,
// partners, stores, rules) as it is: enrollment. Reloading the registry
// reads every store, so enrolling a region's tills one by one would cost
// time in the square of the stores.
func (s *BoltStore) enrollAdmin(op string, fn func(tx *bolt.Tx) error) error {
	return s.adminOf(op, fn, false)
}

func (s *BoltStore) adminOf(op string, fn func(tx *bolt.Tx) error, reload bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Update(fn); err != nil {
		if _, ok := err.(*protocol.Error); ok {
			return err
		}
		return fmt.Errorf("ledger: %s: %w", op, err)
	}
	if !reload {
		return nil
	}
	if err := s.refresh(); err != nil {
		return fmt.Errorf("ledger: %s: reload: %w", op, err)
	}
	return nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

func rulesKey(partner string, version int64) []byte {
	k := append([]byte(partner), 0)
	return binary.BigEndian.AppendUint64(k, uint64(version))
}

// Coalition returns the coalition's settings.
func (s *BoltStore) Coalition() (Coalition, error) { return s.reg.Load().coalition, nil }

// SetCoalition records the coalition's settings.
func (s *BoltStore) SetCoalition(c Coalition) error {
	if err := c.Validate(); err != nil {
		return err
	}
	return s.admin("set coalition", func(tx *bolt.Tx) error { return setCoalition(tx, s.reg.Load(), c) })
}

func setCoalition(tx *bolt.Tx, reg *registry, c Coalition) error {
	for p, versions := range reg.rules {
		if len(versions) > 0 && versions[0].Currency != c.Currency {
			return protocol.Errorf(protocol.CodeConflict, "currency", "partner %s has earn rules in %s; the currency cannot change", p, versions[0].Currency)
		}
	}
	return putJSON(tx.Bucket(bucketCoalition), coalitionKey, c)
}

// PutPartner creates a partner or renames it.
func (s *BoltStore) PutPartner(p Partner, now time.Time) error {
	if !protocol.ValidID(p.ID) {
		return idError("id", p.ID)
	}
	if err := checkName("name", p.Name); err != nil {
		return err
	}
	return s.admin("put partner", func(tx *bolt.Tx) error { _, err := putPartner(tx, p, now); return err })
}

func putPartner(tx *bolt.Tx, p Partner, now time.Time) (bool, error) {
	b := tx.Bucket(bucketPartners)
	if v := b.Get([]byte(p.ID)); v != nil {
		var old Partner
		if err := json.Unmarshal(v, &old); err != nil {
			return false, fmt.Errorf("partner %s: %w", p.ID, err)
		}
		if old.Name == p.Name {
			return false, nil
		}
		p.CreatedAt = old.CreatedAt
	} else {
		p.CreatedAt = now.UTC()
	}
	return true, putJSON(b, []byte(p.ID), p)
}

// Partners lists the partners, by id.
func (s *BoltStore) Partners() ([]Partner, error) {
	r := s.reg.Load()
	out := make([]Partner, 0, len(r.partners))
	for _, p := range r.partners {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Partner) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// PutStore registers a store or renames it.
func (s *BoltStore) PutStore(st StoreInfo, now time.Time) error {
	if !protocol.ValidID(st.ID) {
		return idError("id", st.ID)
	}
	if !protocol.ValidID(st.Partner) {
		return idError("partner", st.Partner)
	}
	if err := checkName("name", st.Name); err != nil {
		return err
	}
	return s.admin("put store", func(tx *bolt.Tx) error { _, err := putStore(tx, st, now); return err })
}

func putStore(tx *bolt.Tx, st StoreInfo, now time.Time) (bool, error) {
	if tx.Bucket(bucketPartners).Get([]byte(st.Partner)) == nil {
		return false, protocol.Errorf(protocol.CodeUnknownPartner, "partner", "no partner %q; add it first", st.Partner)
	}
	b := tx.Bucket(bucketStores)
	if v := b.Get([]byte(st.ID)); v != nil {
		var old StoreInfo
		if err := json.Unmarshal(v, &old); err != nil {
			return false, fmt.Errorf("store %s: %w", st.ID, err)
		}
		if old.Partner != st.Partner {
			used, err := storeHasTransactions(tx, st.ID)
			if err != nil {
				return false, err
			}
			if used {
				return false, protocol.Errorf(protocol.CodeConflict, "partner", "store %s trades as %s and has transactions; it cannot move to %s", st.ID, old.Partner, st.Partner)
			}
		}
		if old.Partner == st.Partner && old.Name == st.Name {
			return false, nil
		}
		st.CreatedAt = old.CreatedAt
	} else {
		st.CreatedAt = now.UTC()
	}
	return true, putJSON(b, []byte(st.ID), st)
}

// storeHasTransactions reports whether any terminal of the store had a
// transaction applied.
func storeHasTransactions(tx *bolt.Tx, store string) (bool, error) {
	c := tx.Bucket(bucketTerminals).Cursor()
	prefix := []byte(store + "/")
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var t Terminal
		if err := json.Unmarshal(v, &t); err != nil {
			return false, fmt.Errorf("terminal %s: %w", k, err)
		}
		if t.Applied > 0 {
			return true, nil
		}
	}
	return false, nil
}

// Stores lists the registered stores, by id.
func (s *BoltStore) Stores() ([]StoreInfo, error) {
	r := s.reg.Load()
	out := make([]StoreInfo, 0, len(r.stores))
	for _, st := range r.stores {
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b StoreInfo) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// AddTerminal registers a terminal of a registered store.
func (s *BoltStore) AddTerminal(store, terminal string, now time.Time) error {
	if !protocol.ValidID(store) {
		return idError("store", store)
	}
	if !protocol.ValidID(terminal) {
		return idError("terminal", terminal)
	}
	return s.admin("add terminal", func(tx *bolt.Tx) error { _, err := addTerminal(tx, store, terminal); return err })
}

func addTerminal(tx *bolt.Tx, store, terminal string) (bool, error) {
	if tx.Bucket(bucketStores).Get([]byte(store)) == nil {
		return false, protocol.Errorf(protocol.CodeUnknownStore, "store", "no store %q; add it first", store)
	}
	b := tx.Bucket(bucketTerminals)
	key := []byte(store + "/" + terminal)
	t := Terminal{Store: store, Terminal: terminal}
	if v := b.Get(key); v != nil {
		if err := json.Unmarshal(v, &t); err != nil {
			return false, fmt.Errorf("terminal %s: %w", key, err)
		}
		if t.Registered {
			return false, nil
		}
	}
	t.Registered = true
	return true, putJSON(b, key, t)
}

// AddRules records a new version of a partner's earn rules.
func (s *BoltStore) AddRules(rs protocol.RuleSet, now time.Time) (protocol.RuleSet, error) {
	var out protocol.RuleSet
	err := s.admin("add rules", func(tx *bolt.Tx) error {
		var err error
		out, err = addRules(tx, s.reg.Load(), rs, now)
		return err
	})
	return out, err
}

// rulesSkew is how far in the past a new version may start: the time an
// operator's request takes to arrive, not a licence to reprice.
const rulesSkew = 5 * time.Minute

func addRules(tx *bolt.Tx, reg *registry, rs protocol.RuleSet, now time.Time) (protocol.RuleSet, error) {
	if tx.Bucket(bucketPartners).Get([]byte(rs.Partner)) == nil {
		if !protocol.ValidID(rs.Partner) {
			return rs, idError("partner", rs.Partner)
		}
		return rs, protocol.Errorf(protocol.CodeUnknownPartner, "partner", "no partner %q; add it first", rs.Partner)
	}
	c := reg.coalition
	if c.Currency == "" {
		return rs, protocol.Errorf(protocol.CodeConflict, "currency", "set the coalition's currency and point value first")
	}
	if rs.Currency == "" {
		rs.Currency = c.Currency
	}
	if rs.Currency != c.Currency {
		return rs, protocol.Errorf(protocol.CodeCurrencyMismatch, "currency", "rules in %s, the coalition settles in %s", rs.Currency, c.Currency)
	}
	if rs.Rounding == "" {
		rs.Rounding = protocol.RoundDown
	}
	rs.Version = 0
	if err := rs.Validate(); err != nil {
		return rs, err
	}
	now = now.UTC()
	versions := reg.rules[rs.Partner]
	if rs.EffectiveFrom.IsZero() {
		rs.EffectiveFrom = now
	}
	rs.EffectiveFrom = rs.EffectiveFrom.UTC()
	if len(versions) > 0 {
		last := versions[len(versions)-1]
		if rs.EffectiveFrom.Before(now.Add(-rulesSkew)) {
			return rs, protocol.Errorf(protocol.CodeInvalidRules, "effective_from", "%s is in the past: tills may already have quoted with version %d; use a time from now on", rs.EffectiveFrom.Format(time.RFC3339), last.Version)
		}
		if rs.EffectiveFrom.Before(last.EffectiveFrom) {
			return rs, protocol.Errorf(protocol.CodeInvalidRules, "effective_from", "before version %d's (%s); versions take effect in order", last.Version, last.EffectiveFrom.Format(time.RFC3339))
		}
		rs.Version = last.Version + 1
	} else {
		rs.Version = 1
	}
	return rs, putJSON(tx.Bucket(bucketRules), rulesKey(rs.Partner, rs.Version), rs)
}

// Rules returns a partner's rule versions, oldest first.
func (s *BoltStore) Rules(partner string) ([]protocol.RuleSet, error) {
	r := s.reg.Load()
	if _, ok := r.partners[partner]; !ok {
		return nil, protocol.Errorf(protocol.CodeUnknownPartner, "partner", "no partner %q", partner)
	}
	return slices.Clone(r.rules[partner]), nil
}

// sameRules reports whether two rule sets price alike (ignoring partner,
// version and start).
func sameRules(a, b protocol.RuleSet) bool {
	a.Partner, a.Version, a.EffectiveFrom = "", 0, time.Time{}
	b.Partner, b.Version, b.EffectiveFrom = "", 0, time.Time{}
	if a.Rounding == "" {
		a.Rounding = protocol.RoundDown
	}
	if b.Rounding == "" {
		b.Rounding = protocol.RoundDown
	}
	return reflect.DeepEqual(normRules(a), normRules(b))
}

func normRules(r protocol.RuleSet) protocol.RuleSet {
	if len(r.Categories) == 0 {
		r.Categories = nil
	}
	if len(r.SKUs) == 0 {
		r.SKUs = nil
	}
	if len(r.Campaigns) == 0 {
		r.Campaigns = nil
	}
	for i := range r.Campaigns {
		r.Campaigns[i].From, r.Campaigns[i].To = r.Campaigns[i].From.UTC(), r.Campaigns[i].To.UTC()
	}
	return r
}

// LoadSeed applies a seed in one commit.
func (s *BoltStore) LoadSeed(seed *Seed, now time.Time) (SeedReport, error) {
	var rep SeedReport
	if err := seed.Coalition.Validate(); err != nil {
		return rep, prefixErr("coalition", err)
	}
	seen := map[string]string{}
	for i, p := range seed.Partners {
		f := "partners[" + itoa(i) + "]"
		if !protocol.ValidID(p.ID) {
			return rep, idError(f+".id", p.ID)
		}
		if err := checkName(f+".name", p.Name); err != nil {
			return rep, err
		}
		for j, st := range p.Stores {
			g := f + ".stores[" + itoa(j) + "]"
			if !protocol.ValidID(st.ID) {
				return rep, idError(g+".id", st.ID)
			}
			if other, dup := seen[st.ID]; dup {
				return rep, protocol.Errorf(protocol.CodeConflict, g+".id", "store %s is listed twice (also under %s)", st.ID, other)
			}
			seen[st.ID] = p.ID
			if err := checkName(g+".name", st.Name); err != nil {
				return rep, err
			}
			for k, t := range st.Terminals {
				if !protocol.ValidID(t) {
					return rep, idError(g+".terminals["+itoa(k)+"]", t)
				}
			}
		}
	}
	err := s.admin("load seed", func(tx *bolt.Tx) error {
		if err := setCoalition(tx, s.reg.Load(), seed.Coalition); err != nil {
			return err
		}
		reg, err := loadRegistry(tx)
		if err != nil {
			return err
		}
		for i, p := range seed.Partners {
			f := "partners[" + itoa(i) + "]"
			changed, err := putPartner(tx, Partner{ID: p.ID, Name: p.Name}, now)
			if err != nil {
				return prefixErr(f, err)
			}
			if changed {
				rep.Partners++
			}
			if p.Rules != nil {
				rs := *p.Rules
				rs.Partner = p.ID
				if rs.Currency == "" {
					rs.Currency = seed.Coalition.Currency
				}
				versions := reg.rules[p.ID]
				if len(versions) == 0 || !sameRules(*protocol.SelectRules(versions, now), rs) {
					if len(versions) > 0 && rs.EffectiveFrom.Before(now) {
						rs.EffectiveFrom = now
					}
					if _, err := addRules(tx, reg, rs, now); err != nil {
						return prefixErr(f+".rules", err)
					}
					rep.Rules++
				}
			}
			for j, st := range p.Stores {
				g := f + ".stores[" + itoa(j) + "]"
				changed, err := putStore(tx, StoreInfo{ID: st.ID, Partner: p.ID, Name: st.Name}, now)
				if err != nil {
					return prefixErr(g, err)
				}
				if changed {
					rep.Stores++
				}
				for _, t := range st.Terminals {
					added, err := addTerminal(tx, st.ID, t)
					if err != nil {
						return prefixErr(g, err)
					}
					if added {
						rep.Terminals++
					}
				}
			}
		}
		return nil
	})
	return rep, err
}

// prefixErr puts where in a seed a protocol error was found in front of its field.
func prefixErr(where string, err error) error {
	pe, ok := err.(*protocol.Error)
	if !ok {
		return err
	}
	f := where
	if pe.Field != "" {
		f += "." + pe.Field
	}
	return &protocol.Error{Code: pe.Code, Field: f, Msg: pe.Msg}
}

func itoa(i int) string { return strconv.Itoa(i) }
