package ironhoard

import (
	"bufio"
	"fmt"
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestWritePrometheus(t *testing.T) {
	m := NewMetrics()
	g7, g42 := m.Game(7), m.Game(42)
	if m.Game(7) != g7 {
		t.Fatal("Game(7) twice: two registries")
	}
	g7.moves.Add(3)
	g7.refused.Add(1)
	g7.outOfOrder.Add(2)
	for i := 1; i <= 100; i++ {
		g7.journey.Record(time.Duration(i) * time.Millisecond)
	}
	g42.moves.Add(5)

	var sb strings.Builder
	if err := m.WritePrometheus(&sb); err != nil {
		t.Fatal(err)
	}
	out := sb.String()

	sample := regexp.MustCompile(`^([a-z_]+)\{game="(\d+)"(?:,quantile="(0\.5|0\.9|0\.99|0\.999)")?\} ([0-9.e+-]+)$`)
	help := regexp.MustCompile(`^# (HELP|TYPE) ([a-z_]+) (.+)$`)
	typed := map[string]string{}
	values := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if h := help.FindStringSubmatch(line); h != nil {
			if h[1] == "TYPE" {
				typed[h[2]] = h[3]
			}
			continue
		}
		s := sample.FindStringSubmatch(line)
		if s == nil {
			t.Fatalf("not a sample: %q in\n%s", line, out)
		}
		if _, ok := typed[s[1]]; !ok {
			t.Errorf("sample of %s before its # TYPE", s[1])
		}
		key := s[1] + "/" + s[2]
		if s[3] != "" {
			key += "/" + s[3]
		}
		values[key] = s[4]
	}
	wantTypes := map[string]string{
		"ironhoard_consumer_moves_total":                "counter",
		"ironhoard_consumer_refused_total":              "counter",
		"ironhoard_consumer_out_of_order_total":         "counter",
		"ironhoard_consumer_journey_microseconds":       "gauge",
		"ironhoard_consumer_journey_microseconds_count": "counter",
	}
	for name, kind := range wantTypes {
		if typed[name] != kind {
			t.Errorf("# TYPE %s %q, want %q", name, typed[name], kind)
		}
		if !strings.Contains(out, "# HELP "+name+" ") {
			t.Errorf("no # HELP for %s", name)
		}
	}
	for key, want := range map[string]string{
		"ironhoard_consumer_moves_total/7":                 "3",
		"ironhoard_consumer_moves_total/42":                "5",
		"ironhoard_consumer_refused_total/7":               "1",
		"ironhoard_consumer_refused_total/42":              "0",
		"ironhoard_consumer_out_of_order_total/7":          "2",
		"ironhoard_consumer_journey_microseconds_count/7":  "100",
		"ironhoard_consumer_journey_microseconds_count/42": "0",
		"ironhoard_consumer_journey_microseconds/42/0.5":   "0",
	} {
		got, ok := values[key]
		if !ok {
			t.Errorf("no sample %s in\n%s", key, out)
			continue
		}
		if got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
	for q, want := range map[string]float64{"0.5": 50000, "0.9": 90000, "0.99": 99000, "0.999": 100000} {
		var got float64
		if _, err := fmt.Sscan(values["ironhoard_consumer_journey_microseconds/7/"+q], &got); err != nil {
			t.Fatalf("quantile %s: %v", q, err)
		}
		if got < want*0.99 || got > want*1.01 {
			t.Errorf("journey quantile %s = %v µs, want %v ±1 %%", q, got, want)
		}
	}

	// the HTTP handler serves the same text
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	if rec.Code != 200 || string(body) != out {
		t.Errorf("GET /metrics: %d, body differs from WritePrometheus", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}

	s := m.Summary()
	if s.Consumed != 8 || s.Refused != 1 || s.OutOfOrder != 2 || s.JourneyUs.Count != 100 {
		t.Errorf("summary %+v", s)
	}
}

func TestSeqTracker(t *testing.T) {
	tr := seqTracker{last: map[uint32]uint64{}}
	steps := []struct {
		player uint32
		seq    uint64
		apply  bool
		ooo    bool
	}{
		{1, 5, true, false},  // first move of a player: in order
		{1, 6, true, false},  // grows
		{1, 6, true, true},   // the same again: a duplicate
		{1, 4, true, true},   // older
		{2, 1, true, false},  // another player has its own seq
		{1, 7, false, false}, // handed over, not applied (callback failed)...
		{1, 7, true, false},  // ...so its redelivery is in order
		{1, 7, true, true},
		{2, 2, true, false},
	}
	for i, s := range steps {
		if got := tr.outOfOrder(s.player, s.seq); got != s.ooo {
			t.Errorf("step %d (player %d seq %d): out of order %v, want %v", i, s.player, s.seq, got, s.ooo)
		}
		if s.apply {
			tr.applied(s.player, s.seq)
		}
	}
	if tr.last[1] != 7 || tr.last[2] != 2 {
		t.Errorf("last seqs %v", tr.last)
	}
}
