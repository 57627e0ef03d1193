package agent

import (
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent/outbox"
	"github.com/tillsync/tillsync/protocol"
)

// TestOfflinePolicyCheck: each limit of the offline policy, alone and at
// its edge.
func TestOfflinePolicyCheck(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	p := OfflinePolicy{MemberAllowance: 100, StoreCap: 300, StoreTills: 2, MaxBalanceAge: time.Hour}.withDefaults()
	fresh := outbox.Balance{Points: 500, AsOf: now.Add(-time.Hour)}
	book := &offlineBook{burns: map[string]offlineBurn{
		"a": {member: "m1", points: 40, at: now},
		"b": {member: "m1", points: 20, at: now},
		"c": {member: "m2", points: 60, at: now},
	}} // m1 has 60 offline, the till 120 of its 150
	for _, c := range []struct {
		name     string
		p        OfflinePolicy
		member   string
		points   int64
		bal      outbox.Balance
		found    bool
		want     protocol.Code
		estimate int64
	}{
		{"off", OfflinePolicy{}, "m3", 1, fresh, true, protocol.CodeOffline, 500},
		{"no balance", p, "m3", 1, outbox.Balance{}, false, protocol.CodeOfflineNoBalance, 0},
		{"balance just old enough", p, "m3", 30, fresh, true, "", 500},
		{"balance too old", p, "m3", 1, outbox.Balance{Points: 500, AsOf: now.Add(-time.Hour - time.Second)}, true, protocol.CodeOfflineStaleBalance, 500},
		{"balance less offline burns covers it", p, "m1", 30, outbox.Balance{Points: 90, AsOf: now}, true, "", 30},
		{"balance less offline burns does not", p, "m1", 41, outbox.Balance{Points: 100, AsOf: now}, true, protocol.CodeOfflineBalance, 40},
		{"negative balance", p, "m3", 1, outbox.Balance{Points: -5, AsOf: now}, true, protocol.CodeOfflineBalance, -5},
		{"allowance to the point", p, "m1", 30, fresh, true, "", 440},
		{"over the allowance", p, "m1", 41, fresh, true, protocol.CodeOfflineMemberLimit, 440},
		{"till share to the point", p, "m3", 30, fresh, true, "", 500},
		{"over the till share", p, "m3", 31, fresh, true, protocol.CodeOfflineStoreCap, 500},
		{"one till has the whole cap", OfflinePolicy{MemberAllowance: 100, StoreCap: 300}.withDefaults(), "m3", 100, fresh, true, "", 500},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, est, _ := c.p.check(book, c.member, c.points, c.bal, c.found, now)
			if code != c.want || est != c.estimate {
				t.Errorf("check(%s, %d) = %q, estimate %d; want %q, %d", c.member, c.points, code, est, c.want, c.estimate)
			}
		})
	}
}

func TestOfflinePolicyValidate(t *testing.T) {
	for _, c := range []struct {
		p  OfflinePolicy
		ok bool
	}{
		{OfflinePolicy{}, true},
		{OfflinePolicy{MemberAllowance: 10, StoreCap: 100, StoreTills: 3}, true},
		{OfflinePolicy{MemberAllowance: -1}, false},
		{OfflinePolicy{MemberAllowance: 10}, false}, // no cap
		{OfflinePolicy{MemberAllowance: 10, StoreCap: 100, StoreTills: 1001}, false},
		{OfflinePolicy{MaxBalanceAge: -time.Second}, false},
	} {
		if err := c.p.Validate(); (err == nil) != c.ok {
			t.Errorf("Validate(%+v) = %v, want ok %v", c.p, err, c.ok)
		}
	}
}
