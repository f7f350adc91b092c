package ironhoard

import (
	"encoding/json"
	"math"
	"math/rand"
	"sort"
	"testing"
	"time"
)

// nearestRank is the reference quantile of sorted values.
func nearestRank(sorted []uint64, q float64) uint64 {
	r := int(math.Ceil(q * float64(len(sorted))))
	if r < 1 {
		r = 1
	}
	return sorted[r-1]
}

func TestHistogramBuckets(t *testing.T) {
	// every value falls in the bucket whose bounds it is within, and
	// buckets are at most 1/128 of their values wide
	vals := []uint64{0, 1, 127, 128, 255, 256, 257, 511, 512, 1000, 1 << 20, 1<<40 + 12345, math.MaxUint64}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 10000; i++ {
		vals = append(vals, rng.Uint64()>>uint(rng.Intn(64)))
	}
	for _, v := range vals {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("value %d: index %d out of [0, %d)", v, i, histBuckets)
		}
		low, width := histBucket(i)
		if v < low || v-low >= width {
			t.Fatalf("value %d in bucket %d = [%d, %d+%d)", v, i, low, low, width)
		}
		if width > 1 && float64(width)/float64(low) > 1.0/128 {
			t.Fatalf("bucket %d: width %d for low %d", i, width, low)
		}
	}
}

func TestHistogramQuantilesAgainstSortedReference(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for _, dist := range []struct {
		name string
		gen  func() time.Duration
	}{
		// 1 µs to about an hour, log-uniform
		{"log-uniform", func() time.Duration {
			return time.Duration(math.Exp(rng.Float64()*math.Log(3.6e12/1e3)) * 1e3)
		}},
		// a typical journey: ~200 µs with a long tail
		{"lognormal", func() time.Duration { return time.Duration(math.Exp(rng.NormFloat64()*0.8 + 12.2)) }},
		{"few", func() time.Duration { return time.Duration(1+rng.Intn(5)) * time.Millisecond }},
	} {
		t.Run(dist.name, func(t *testing.T) {
			h := NewHistogram()
			var ref []uint64
			for i := 0; i < 20000; i++ {
				d := dist.gen()
				h.Record(d)
				ref = append(ref, uint64(d))
			}
			sort.Slice(ref, func(i, j int) bool { return ref[i] < ref[j] })
			if h.Count() != uint64(len(ref)) {
				t.Fatalf("count %d, want %d", h.Count(), len(ref))
			}
			for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1} {
				got, want := float64(h.Quantile(q)), float64(nearestRank(ref, q))
				if math.Abs(got-want) > 0.01*want {
					t.Errorf("q %v: %v, want %v (±1 %%)", q, got, want)
				}
			}
			if h.Max() != time.Duration(ref[len(ref)-1]) {
				t.Errorf("max %v, want %v", h.Max(), time.Duration(ref[len(ref)-1]))
			}
		})
	}
}

func TestHistogramSnapshotAndMerge(t *testing.T) {
	a, b := NewHistogram(), NewHistogram()
	if s := a.Snapshot(); s != (HistogramSnapshot{}) {
		t.Errorf("empty snapshot %+v", s)
	}
	for i := 1; i <= 1000; i++ {
		a.Record(time.Duration(i) * time.Microsecond)
	}
	b.Record(-time.Second) // clock skew: a 0
	b.Record(time.Hour)
	a.Merge(b)
	s := a.Snapshot()
	if s.Count != 1002 || s.Max != 3600e6 {
		t.Errorf("count %d max %d, want 1002 3600000000", s.Count, s.Max)
	}
	// ranks 501, 902, 992, 1001 of {0, 1..1000 µs, 1 h}
	for _, c := range []struct {
		got, want uint64
	}{{s.P50, 500}, {s.P90, 901}, {s.P99, 991}, {s.P999, 1000}} {
		if math.Abs(float64(c.got)-float64(c.want)) > 0.01*float64(c.want) {
			t.Errorf("snapshot %+v: %d, want %d ±1 %%", s, c.got, c.want)
		}
	}
	if a.Negative() != 1 {
		t.Errorf("negative %d, want 1", a.Negative())
	}
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]json.Number
	if err := json.Unmarshal(j, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"count", "p50", "p90", "p99", "p999", "max"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("snapshot JSON %s has no %q", j, k)
		}
	}
	if len(keys) != 6 {
		t.Errorf("snapshot JSON %s: %d keys, want 6", j, len(keys))
	}
}
