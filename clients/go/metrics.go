package ironhoard

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
)

// GameMetrics are the counters and the journey histogram of one game's
// consumer. Safe for concurrent use.
type GameMetrics struct {
	game       uint32
	moves      atomic.Uint64
	refused    atomic.Uint64
	outOfOrder atomic.Uint64
	journey    *Histogram
}

func newGameMetrics(game uint32) *GameMetrics {
	return &GameMetrics{game: game, journey: NewHistogram()}
}

// Game is the game these metrics are about.
func (g *GameMetrics) Game() uint32 { return g.game }

// Moves is the number of verified moves the callback accepted (and that
// were acked).
func (g *GameMetrics) Moves() uint64 { return g.moves.Load() }

// Refused is the number of messages terminated because they did not parse
// or did not verify.
func (g *GameMetrics) Refused() uint64 { return g.refused.Load() }

// OutOfOrder is the number of verified moves handed to the callback whose
// seq was not greater than the last one applied for their player.
func (g *GameMetrics) OutOfOrder() uint64 { return g.outOfOrder.Load() }

// Journey is the histogram of the time from the appliance receiving a move
// (its RecvUnixNs) to just before the callback is called with it.
func (g *GameMetrics) Journey() *Histogram { return g.journey }

// Metrics holds the GameMetrics of every game a process consumes, and
// exposes them. The zero value is not usable: use NewMetrics. Metrics is an
// http.Handler serving the Prometheus text exposition (for /metrics).
type Metrics struct {
	mu    sync.Mutex
	games map[uint32]*GameMetrics
}

// NewMetrics is an empty registry.
func NewMetrics() *Metrics { return &Metrics{games: map[uint32]*GameMetrics{}} }

// Game is the metrics of game, created on first use.
func (m *Metrics) Game(game uint32) *GameMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.games[game]
	if !ok {
		g = newGameMetrics(game)
		m.games[game] = g
	}
	return g
}

func (m *Metrics) sorted() []*GameMetrics {
	m.mu.Lock()
	gs := make([]*GameMetrics, 0, len(m.games))
	for _, g := range m.games {
		gs = append(gs, g)
	}
	m.mu.Unlock()
	sort.Slice(gs, func(i, j int) bool { return gs[i].game < gs[j].game })
	return gs
}

// Summary is the totals over every game: the game server's final report.
type Summary struct {
	Consumed   uint64            `json:"consumed"`
	Refused    uint64            `json:"refused"`
	OutOfOrder uint64            `json:"out_of_order"`
	JourneyUs  HistogramSnapshot `json:"journey_us"`
}

// Summary adds up every game's counters and merges their journeys.
func (m *Metrics) Summary() Summary {
	var s Summary
	all := NewHistogram()
	for _, g := range m.sorted() {
		s.Consumed += g.Moves()
		s.Refused += g.Refused()
		s.OutOfOrder += g.OutOfOrder()
		all.Merge(g.journey)
	}
	s.JourneyUs = all.Snapshot()
	return s
}

// WritePrometheus writes every game's metrics in the Prometheus text
// exposition format (version 0.0.4):
//
//	ironhoard_consumer_moves_total{game="7"}
//	ironhoard_consumer_refused_total{game="7"}
//	ironhoard_consumer_out_of_order_total{game="7"}
//	ironhoard_consumer_journey_microseconds{game="7",quantile="0.5"|"0.9"|"0.99"|"0.999"}
//	ironhoard_consumer_journey_microseconds_count{game="7"}
func (m *Metrics) WritePrometheus(w io.Writer) error {
	gs := m.sorted()
	bw := bufio.NewWriter(w)
	family := func(name, kind, help string) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
	}
	counter := func(name, help string, v func(*GameMetrics) uint64) {
		family(name, "counter", help)
		for _, g := range gs {
			fmt.Fprintf(bw, "%s{game=\"%d\"} %d\n", name, g.game, v(g))
		}
	}
	counter("ironhoard_consumer_moves_total", "Verified moves applied and acked.", (*GameMetrics).Moves)
	counter("ironhoard_consumer_refused_total", "Messages terminated: malformed, or a tag that does not verify.", (*GameMetrics).Refused)
	counter("ironhoard_consumer_out_of_order_total", "Verified moves whose seq was not above the last applied for their player.", (*GameMetrics).OutOfOrder)
	const journey = "ironhoard_consumer_journey_microseconds"
	family(journey, "gauge", "Appliance receive time to the consumer's callback, percentiles since start.")
	for _, g := range gs {
		g.journey.mu.Lock()
		for _, q := range snapshotQuantiles {
			us := float64(g.journey.quantile(q.q)) / 1e3
			fmt.Fprintf(bw, "%s{game=\"%d\",quantile=\"%s\"} %s\n", journey, g.game, q.label, strconv.FormatFloat(us, 'g', -1, 64))
		}
		g.journey.mu.Unlock()
	}
	counter(journey+"_count", "Moves whose journey was measured.", func(g *GameMetrics) uint64 { return g.journey.Count() })
	return bw.Flush()
}

// ServeHTTP serves WritePrometheus's output.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_ = m.WritePrometheus(w)
}

// Handler is m as an http.Handler, for mux.Handle("/metrics", m.Handler()).
func (m *Metrics) Handler() http.Handler { return m }
