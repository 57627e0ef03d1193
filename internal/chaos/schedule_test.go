package chaos

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// A seed replays its schedule exactly, other seeds make other schedules,
// and every schedule holds every kind of fault within the run's bounds.
func TestPlanReplays(t *testing.T) {
	const tills, dur = 8, 20 * time.Second
	seen := map[string]uint64{}
	for seed := uint64(1); seed <= 50; seed++ {
		s := Plan(seed, tills, dur)
		if again := Plan(seed, tills, dur); !reflect.DeepEqual(s, again) {
			t.Fatalf("seed %d: two plans differ:\n%s\n%s", seed, s, again)
		}
		key := fmt.Sprint(s.Skews, s.Faults)
		if prev, ok := seen[key]; ok {
			t.Errorf("seeds %d and %d made the same schedule", prev, seed)
		}
		seen[key] = seed
		counts := s.Count()
		for _, k := range Kinds {
			if counts[k] == 0 {
				t.Errorf("seed %d: no %s fault:\n%s", seed, k, s)
			}
		}
		var lastHub Fault
		for i, f := range s.Faults {
			if i > 0 && f.At < s.Faults[i-1].At {
				t.Errorf("seed %d: faults out of order at %d", seed, i)
			}
			if f.At < dur/10 || f.At > dur*9/10 {
				t.Errorf("seed %d: %v outside the run's middle", seed, f)
			}
			if f.Kind.hubKind() != (f.Till == -1) {
				t.Errorf("seed %d: %v hits the wrong target", seed, f)
			}
			if f.Till >= tills {
				t.Errorf("seed %d: %v names a till that does not exist", seed, f)
			}
			if f.Kind == SkewClock && (f.Skew == 0 || f.Skew > MaxSkew || f.Skew < -MaxSkew) {
				t.Errorf("seed %d: %v: skew out of range", seed, f)
			}
			if f.Kind.hubKind() {
				if lastHub.Kind != "" && f.At <= lastHub.At {
					t.Errorf("seed %d: hub faults %v and %v at once", seed, lastHub, f)
				}
				lastHub = f
			}
		}
		for i, d := range s.Skews {
			if d > MaxSkew || d < -MaxSkew {
				t.Errorf("seed %d: till %d starts with its clock %v off", seed, i, d)
			}
		}
	}
}

// The plan of a short run with one till still holds every kind.
func TestPlanSmall(t *testing.T) {
	s := Plan(7, 1, 5*time.Second)
	for _, k := range Kinds {
		if s.Count()[k] == 0 {
			t.Errorf("no %s fault:\n%s", k, s)
		}
	}
}
