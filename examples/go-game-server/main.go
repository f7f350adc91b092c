// Command ironhoard-go-game-server is an example Go game server consuming
// IronHoard moves from NATS JetStream: copy it and put your game where
// apply is.
//
// For every --game it runs a durable pull consumer (named DURABLE-GAME) on
// the game's stream and subject, verifies every move's tag with the master
// secret of its key_id, applies the move, then acks it. A message that does
// not parse or verify is refused: terminated, never applied, and reported
// on stderr as
//
//	REFUSED game G stream seq S: <why>
//
// The last line of stderr is the summary:
//
//	{"consumed":N,"refused":N,"out_of_order":N,"journey_us":{"count":N,"p50":…,"p90":…,"p99":…,"p999":…,"max":…}}
//
// Exit status: 0 if nothing was refused, 1 otherwise, 2 on a usage or
// connection error.
//
//	ironhoard-go-game-server --server nats://10.0.0.5:4222 --game 7 \
//	    --durable game-server-1 --secret 0=/etc/ironhoard/secret0.hex
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	ironhoard "github.com/ironhoard/ironhoard/clients/go"
	"github.com/nats-io/nats.go"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// gameFlag is a repeatable game id flag.
type gameFlag []uint32

func (g *gameFlag) String() string { return fmt.Sprint([]uint32(*g)) }
func (g *gameFlag) Set(v string) error {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return fmt.Errorf("game id %q: want a number from 0 to 4294967295", v)
	}
	for _, x := range *g {
		if x == uint32(n) {
			return fmt.Errorf("game %d given twice", n)
		}
	}
	*g = append(*g, uint32(n))
	return nil
}

type options struct {
	servers       listFlag
	stream        string
	prefix        string
	partitions    int
	games         gameFlag
	durable       string
	secrets       listFlag
	idle          float64
	count         uint64
	movesOut      string
	metricsListen string
	report        string
}

// errUsage is an error of the command line (exit status 2); quiet when
// the flag package already printed it.
type errUsage struct {
	error
	quiet bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("ironhoard-go-game-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&o.servers, "server", "NATS server URL, nats://HOST:PORT (repeatable)")
	fs.StringVar(&o.stream, "stream", ironhoard.DefaultStream, "stream base name ([ship] stream)")
	fs.StringVar(&o.prefix, "prefix", ironhoard.DefaultPrefix, "subject prefix ([ship] subject_prefix)")
	fs.IntVar(&o.partitions, "partitions", 1, "the shipper's partition count")
	fs.Var(&o.games, "game", "game id to consume (repeatable, at least one)")
	fs.StringVar(&o.durable, "durable", "", "durable consumer name; game G's consumer is NAME-G (required)")
	fs.Var(&o.secrets, "secret", "K=FILE: key_id K's master secret, 64 hex characters (repeatable)")
	fs.Float64Var(&o.idle, "idle", 2, "exit after this many seconds with no message (0: until SIGINT/SIGTERM)")
	fs.Uint64Var(&o.count, "count", 0, "exit once this many moves were consumed in total (0: no limit)")
	fs.StringVar(&o.movesOut, "moves-out", "", `write "key_id game_id player_id seq" for every consumed move to FILE`)
	fs.StringVar(&o.metricsListen, "metrics-listen", "", "serve GET /metrics (Prometheus text) on ADDR while running")
	fs.StringVar(&o.report, "report", "", "also write the final summary JSON to FILE")
	if err := fs.Parse(args); err != nil {
		return nil, errUsage{err, true}
	}
	switch {
	case fs.NArg() > 0:
		return nil, errUsage{error: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	case len(o.servers) == 0:
		return nil, errUsage{error: errors.New("--server is required")}
	case len(o.games) == 0:
		return nil, errUsage{error: errors.New("--game is required (at least one)")}
	case o.durable == "":
		return nil, errUsage{error: errors.New("--durable is required")}
	case len(o.secrets) == 0:
		return nil, errUsage{error: errors.New("--secret is required (at least one K=FILE)")}
	case o.partitions < 1:
		return nil, errUsage{error: fmt.Errorf("--partitions %d: want 1 or more", o.partitions)}
	case o.idle < 0:
		return nil, errUsage{error: fmt.Errorf("--idle %v: want 0 or more seconds", o.idle)}
	}
	return o, nil
}

func loadKeyring(secrets []string) (*ironhoard.Keyring, error) {
	kr := ironhoard.NewKeyring()
	for _, s := range secrets {
		k, path, ok := strings.Cut(s, "=")
		id, err := strconv.ParseUint(k, 10, 8)
		if !ok || err != nil || path == "" {
			return nil, errUsage{error: fmt.Errorf("--secret %q: want KEY_ID=FILE with KEY_ID from 0 to 255", s)}
		}
		if err := kr.AddFile(uint8(id), path); err != nil {
			return nil, err
		}
	}
	return kr, nil
}

// server is the game server's state: what it consumed, and its output.
type server struct {
	opts     *options
	metrics  *ironhoard.Metrics
	stop     context.CancelFunc
	lastSeen atomic.Int64 // Unix ns of the last message

	mu       sync.Mutex
	consumed uint64
	movesOut *bufio.Writer

	errMu  sync.Mutex
	stderr io.Writer
}

var errEnough = errors.New("--count moves consumed already")

// apply is where a game server applies the move to its game; this one
// only counts it (and writes it to --moves-out).
func (s *server) apply(_ context.Context, m *ironhoard.Move) error {
	s.lastSeen.Store(time.Now().UnixNano())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.count > 0 && s.consumed >= s.opts.count {
		return errEnough // nak: left for the next run
	}
	s.consumed++
	if s.movesOut != nil {
		fmt.Fprintf(s.movesOut, "%d %d %d %d\n", m.KeyID, m.GameID, m.PlayerID, m.Seq)
	}
	if s.opts.count > 0 && s.consumed == s.opts.count {
		s.stop()
	}
	return nil
}

func (s *server) refused(r ironhoard.Refusal) {
	s.lastSeen.Store(time.Now().UnixNano())
	s.errorf("REFUSED game %d stream seq %d: %v", r.Game, r.StreamSeq, r.Reason)
}

func (s *server) errorf(format string, args ...interface{}) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	fmt.Fprintf(s.stderr, format+"\n", args...)
}

// watchIdle stops the server after --idle seconds without a message.
func (s *server) watchIdle(ctx context.Context) {
	idle := time.Duration(s.opts.idle * float64(time.Second))
	tick := idle / 20
	if tick > 100*time.Millisecond {
		tick = 100 * time.Millisecond
	}
	if tick < time.Millisecond {
		tick = time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if now.Sub(time.Unix(0, s.lastSeen.Load())) >= idle {
				s.stop()
				return
			}
		}
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		if u, ok := err.(errUsage); !ok || !u.quiet {
			fmt.Fprintf(stderr, "ironhoard-go-game-server: %v\n", err)
		}
		return 2
	}
	kr, err := loadKeyring(opts.secrets)
	if err != nil {
		fmt.Fprintf(stderr, "ironhoard-go-game-server: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &server{opts: opts, metrics: ironhoard.NewMetrics(), stop: cancel, stderr: stderr}
	s.lastSeen.Store(time.Now().UnixNano())

	if opts.movesOut != "" {
		f, err := os.Create(opts.movesOut)
		if err != nil {
			fmt.Fprintf(stderr, "ironhoard-go-game-server: --moves-out: %v\n", err)
			return 2
		}
		defer f.Close()
		s.movesOut = bufio.NewWriter(f)
		defer s.movesOut.Flush()
	}

	servers := strings.Join(opts.servers, ",")
	nc, err := nats.Connect(servers, nats.Name("ironhoard-go-game-server "+opts.durable), nats.MaxReconnects(-1))
	if err != nil {
		fmt.Fprintf(stderr, "ironhoard-go-game-server: connecting to %s: %v\n", servers, err)
		return 2
	}
	defer nc.Close()

	if opts.metricsListen != "" {
		l, err := net.Listen("tcp", opts.metricsListen)
		if err != nil {
			fmt.Fprintf(stderr, "ironhoard-go-game-server: --metrics-listen: %v\n", err)
			return 2
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", s.metrics.Handler())
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = hs.Serve(l) }()
		defer hs.Close()
	}

	consumers := make([]*ironhoard.Consumer, 0, len(opts.games))
	for _, game := range opts.games {
		c, err := ironhoard.NewConsumer(nc, ironhoard.ConsumerConfig{
			Stream:     opts.stream,
			Prefix:     opts.prefix,
			Partitions: opts.partitions,
			Game:       game,
			Durable:    fmt.Sprintf("%s-%d", opts.durable, game),
			Keyring:    kr,
			Metrics:    s.metrics,
			OnRefused:  s.refused,
		})
		if err != nil {
			fmt.Fprintf(stderr, "ironhoard-go-game-server: %s: %v\n", servers, err)
			return 2
		}
		consumers = append(consumers, c)
	}

	if opts.idle > 0 {
		go s.watchIdle(ctx)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(consumers))
	for _, c := range consumers {
		wg.Add(1)
		go func(c *ironhoard.Consumer) {
			defer wg.Done()
			if err := c.Run(ctx, s.apply); err != nil {
				errs <- err
				cancel()
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	status := 0
	for err := range errs {
		s.errorf("ironhoard-go-game-server: %s: %v", servers, err)
		status = 2
	}

	if s.movesOut != nil {
		if err := s.movesOut.Flush(); err != nil {
			s.errorf("ironhoard-go-game-server: --moves-out: %v", err)
			status = 2
		}
	}
	sum := s.metrics.Summary()
	line, _ := json.Marshal(sum)
	if opts.report != "" {
		if err := os.WriteFile(opts.report, append(line, '\n'), 0o644); err != nil {
			s.errorf("ironhoard-go-game-server: --report: %v", err)
			status = 2
		}
	}
	s.errorf("%s", line)
	if status == 0 && sum.Refused > 0 {
		status = 1
	}
	return status
}
