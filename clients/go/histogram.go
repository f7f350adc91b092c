package ironhoard

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// The histogram is log-linear over nanoseconds: values below 256 ns have a
// bucket each, and every power of two above is cut into 128 buckets, so a
// bucket is at most 1/128 of its values wide and its midpoint is within
// 0.4 % of any of them, from 1 ns to the largest uint64.
const (
	histSubBits   = 7
	histSubCount  = 1 << histSubBits // buckets per power of two
	histExactBits = histSubBits + 1  // values below 1<<histExactBits are exact
	histBuckets   = (64-histExactBits)*histSubCount + 2*histSubCount
)

func histIndex(v uint64) int {
	e := bits.Len64(v)
	if e <= histExactBits {
		return int(v)
	}
	s := e - histExactBits
	return s*histSubCount + int(v>>uint(s))
}

// histBucket is the lowest value of bucket i and its width.
func histBucket(i int) (low, width uint64) {
	if i < 2*histSubCount {
		return uint64(i), 1
	}
	s := i/histSubCount - 1
	return uint64(i-s*histSubCount) << uint(s), 1 << uint(s)
}

// Histogram records durations (nanosecond resolution, negative ones as 0)
// and answers quantiles within 0.4 % (1 % guaranteed) of the exact
// nearest-rank quantile. It is safe for concurrent use.
type Histogram struct {
	mu       sync.Mutex
	counts   []uint64
	n        uint64
	min, max uint64
	negative uint64
}

// NewHistogram is an empty histogram.
func NewHistogram() *Histogram { return &Histogram{} }

// Record adds one duration. A negative one (the appliance's clock ahead of
// ours) is recorded as 0 and counted by Negative.
func (h *Histogram) Record(d time.Duration) {
	h.mu.Lock()
	if d < 0 {
		h.negative++
		d = 0
	}
	h.record(uint64(d), 1)
	h.mu.Unlock()
}

func (h *Histogram) record(v, c uint64) {
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	h.counts[histIndex(v)] += c
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n += c
}

// Count is the number of recorded durations.
func (h *Histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Negative is the number of negative durations recorded (as 0).
func (h *Histogram) Negative() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.negative
}

// Max is the largest recorded duration, exactly.
func (h *Histogram) Max() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Duration(h.max)
}

// Quantile is the q-quantile (0 < q <= 1) of the recorded durations by
// nearest rank: the smallest recorded value at least q of the values are
// not above, within the histogram's precision. 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Duration(h.quantile(q))
}

func (h *Histogram) quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			low, width := histBucket(i)
			v := low + (width-1)/2
			if v < h.min {
				v = h.min
			}
			if v > h.max {
				v = h.max
			}
			return v
		}
	}
	return h.max
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if h == o {
		return
	}
	o.mu.Lock()
	counts := append([]uint64(nil), o.counts...)
	n, min, max, neg := o.n, o.min, o.max, o.negative
	o.mu.Unlock()
	if n == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	for i, c := range counts {
		h.counts[i] += c
	}
	if h.n == 0 || min < h.min {
		h.min = min
	}
	if max > h.max {
		h.max = max
	}
	h.n += n
	h.negative += neg
}

// HistogramSnapshot is a histogram's count and quantiles in whole
// microseconds (rounded), as the project's other latency metrics report
// them: {"count","p50","p90","p99","p999","max"}.
type HistogramSnapshot struct {
	Count uint64 `json:"count"`
	P50   uint64 `json:"p50"`
	P90   uint64 `json:"p90"`
	P99   uint64 `json:"p99"`
	P999  uint64 `json:"p999"`
	Max   uint64 `json:"max"`
}

// snapshotQuantiles are the quantiles a snapshot and the Prometheus
// exposition report, with their label values.
var snapshotQuantiles = []struct {
	label string
	q     float64
}{{"0.5", 0.5}, {"0.9", 0.9}, {"0.99", 0.99}, {"0.999", 0.999}}

// Snapshot is the histogram's count and quantiles now.
func (h *Histogram) Snapshot() HistogramSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	us := func(ns uint64) uint64 { return (ns + 500) / 1000 }
	return HistogramSnapshot{
		Count: h.n,
		P50:   us(h.quantile(0.5)),
		P90:   us(h.quantile(0.9)),
		P99:   us(h.quantile(0.99)),
		P999:  us(h.quantile(0.999)),
		Max:   us(h.max),
	}
}
