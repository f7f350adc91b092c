package ironhoard

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Defaults of ConsumerConfig.
const (
	DefaultStream        = "MOVES"
	DefaultPrefix        = "ih.moves"
	DefaultBatch         = 256
	DefaultPullExpires   = 5 * time.Second
	DefaultMaxAckPending = 10000
	DefaultAPIPrefix     = "$JS.API"
)

// Handler applies one verified move. Returning nil acks the message;
// returning an error naks it, and JetStream delivers it again. The Move is
// only valid during the call.
type Handler func(ctx context.Context, m *Move) error

// Refusal describes a message the consumer terminated instead of handing it
// to the Handler.
type Refusal struct {
	Game      uint32 // the consumer's game
	StreamSeq uint64 // the message's stream sequence (0 if unknown)
	Subject   string // the message's subject
	Reason    error  // what is wrong with it
}

// ConsumerConfig says which game to consume, from where, and how.
type ConsumerConfig struct {
	// Stream is the stream's base name ([ship] stream), default "MOVES".
	Stream string
	// Prefix is the subject prefix ([ship] subject_prefix), default "ih.moves".
	Prefix string
	// Partitions is the shipper's partition count, default 1.
	Partitions int
	// Game is the game to consume.
	Game uint32
	// Durable is the durable consumer's name (required). It remembers what
	// was acked: a consumer started again goes on where it left off.
	Durable string
	// Keyring holds the master secrets moves are verified with (required).
	Keyring *Keyring
	// Metrics receives the game's counters and journey histogram; a new
	// registry if nil.
	Metrics *Metrics
	// OnRefused, if set, is called (from Run's goroutine) for every message
	// that was terminated because it does not parse or does not verify.
	OnRefused func(Refusal)

	// Batch is how many messages the consumer keeps requested from the
	// server; it asks for more when half of them arrived. Default 256.
	Batch int
	// PullExpires is how long one pull request waits at the server.
	// Default 5 s; a lost request (e.g. across a reconnect) is noticed and
	// replaced after PullExpires plus 2 s.
	PullExpires time.Duration
	// AckWait and MaxAckPending configure the durable consumer when it is
	// created (an existing one is left as it is). Defaults: the server's
	// ack wait (30 s), 10000.
	AckWait       time.Duration
	MaxAckPending int
	// APIPrefix is the JetStream API prefix, default "$JS.API".
	APIPrefix string
}

// Consumer consumes one game's moves through a durable JetStream pull
// consumer (explicit acks, deliver all, filtered on the game's subject, in
// the game's stream). Create it with NewConsumer and call Run.
type Consumer struct {
	nc      *nats.Conn
	cfg     ConsumerConfig
	stream  string
	subject string
	metrics *GameMetrics
	seqs    seqTracker
}

// NewConsumer checks cfg, then makes sure the durable consumer exists on
// the game's stream: it creates it, or checks that an existing one filters
// the game's subject with explicit acks.
func NewConsumer(nc *nats.Conn, cfg ConsumerConfig) (*Consumer, error) {
	if nc == nil {
		return nil, errors.New("ironhoard: NewConsumer: no NATS connection")
	}
	if cfg.Durable == "" {
		return nil, fmt.Errorf("ironhoard: consumer of game %d: no durable name", cfg.Game)
	}
	if strings.ContainsAny(cfg.Durable, ".*> \t") {
		return nil, fmt.Errorf("ironhoard: durable name %q: must not contain '.', '*', '>' or white space", cfg.Durable)
	}
	if cfg.Keyring == nil {
		return nil, fmt.Errorf("ironhoard: consumer %s: no keyring", cfg.Durable)
	}
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Partitions < 1 {
		cfg.Partitions = 1
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Batch < 1 {
		cfg.Batch = DefaultBatch
	}
	if cfg.PullExpires <= 0 {
		cfg.PullExpires = DefaultPullExpires
	}
	if cfg.MaxAckPending == 0 {
		cfg.MaxAckPending = DefaultMaxAckPending
	}
	if cfg.APIPrefix == "" {
		cfg.APIPrefix = DefaultAPIPrefix
	}
	cfg.APIPrefix = strings.TrimSuffix(cfg.APIPrefix, ".")
	c := &Consumer{
		nc:      nc,
		cfg:     cfg,
		stream:  StreamName(cfg.Stream, cfg.Game, cfg.Partitions),
		subject: Subject(cfg.Prefix, cfg.Game, cfg.Partitions),
		metrics: cfg.Metrics.Game(cfg.Game),
		seqs:    seqTracker{last: map[uint32]uint64{}},
	}
	if err := c.ensure(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Consumer) ensure() error {
	js, err := c.nc.JetStream(nats.APIPrefix(c.cfg.APIPrefix))
	if err != nil {
		return fmt.Errorf("ironhoard: JetStream: %w", err)
	}
	where := fmt.Sprintf("consumer %q on stream %q (game %d)", c.cfg.Durable, c.stream, c.cfg.Game)
	info, err := js.ConsumerInfo(c.stream, c.cfg.Durable)
	switch {
	case err == nil:
		if info.Config.DeliverSubject != "" {
			return fmt.Errorf("ironhoard: %s is a push consumer (deliver subject %q), want a pull consumer", where, info.Config.DeliverSubject)
		}
		if info.Config.FilterSubject != c.subject {
			return fmt.Errorf("ironhoard: %s filters %q, want %q", where, info.Config.FilterSubject, c.subject)
		}
		if info.Config.AckPolicy != nats.AckExplicitPolicy {
			return fmt.Errorf("ironhoard: %s has ack policy %v, want explicit", where, info.Config.AckPolicy)
		}
		return nil
	case errors.Is(err, nats.ErrStreamNotFound):
		return fmt.Errorf("ironhoard: stream %q (game %d, partitions %d) not found: %w", c.stream, c.cfg.Game, c.cfg.Partitions, err)
	case errors.Is(err, nats.ErrConsumerNotFound):
	default:
		return fmt.Errorf("ironhoard: %s: %w", where, err)
	}
	_, err = js.AddConsumer(c.stream, &nats.ConsumerConfig{
		Durable:       c.cfg.Durable,
		DeliverPolicy: nats.DeliverAllPolicy,
		AckPolicy:     nats.AckExplicitPolicy,
		AckWait:       c.cfg.AckWait,
		FilterSubject: c.subject,
		MaxAckPending: c.cfg.MaxAckPending,
	})
	if err != nil {
		return fmt.Errorf("ironhoard: creating %s: %w", where, err)
	}
	return nil
}

// Stream is the stream the consumer reads (the game's partition's).
func (c *Consumer) Stream() string { return c.stream }

// Subject is the game's subject, the consumer's filter.
func (c *Consumer) Subject() string { return c.subject }

// Durable is the durable consumer's name.
func (c *Consumer) Durable() string { return c.cfg.Durable }

// Metrics is the game's counters and journey histogram.
func (c *Consumer) Metrics() *GameMetrics { return c.metrics }

// noRespondersPause is how long the consumer waits before it asks again
// when nothing answered its pull request (a 503).
const noRespondersPause = 500 * time.Millisecond

// stallGrace is how long after a pull request's expiry the consumer waits
// for the server's word on it before it takes the request as lost.
const stallGrace = 2 * time.Second

// Run consumes until ctx is done (then it returns nil) or the connection
// fails. Every message is parsed and verified: one that fails is terminated
// (never redelivered), counted and reported to OnRefused, and never reaches
// h. A verified move goes to h as soon as it arrives: the consumer keeps
// pull requests outstanding at the server rather than waiting for a batch
// to fill. The message is acked (asynchronously, no round trip) after h
// returns nil, nacked if h returns an error. Messages received but not
// handled when ctx ends are nacked. A pull request nothing answered (503:
// the consumer's leader being elected, JetStream restarting) is asked again
// after a pause, not returned as an error. Run must not be called
// concurrently on one Consumer; calling it again after it returned goes on
// where it stopped.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	inbox := nats.NewInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("ironhoard: consumer %s: subscribing to %s: %w", c.cfg.Durable, inbox, err)
	}
	defer func() {
		c.nakBuffered(sub)
		_ = sub.Unsubscribe()
		_ = c.nc.FlushTimeout(2 * time.Second) // let the acks reach the server
	}()
	next := fmt.Sprintf("%s.CONSUMER.MSG.NEXT.%s.%s", c.cfg.APIPrefix, c.stream, c.cfg.Durable)
	batch, half := c.cfg.Batch, c.cfg.Batch/2
	pending := 0 // messages requested and not yet answered for
	for {
		if ctx.Err() != nil {
			return nil
		}
		if pending <= half {
			n := batch - pending
			req := fmt.Sprintf(`{"batch":%d,"expires":%d}`, n, c.cfg.PullExpires.Nanoseconds())
			if err := c.nc.PublishRequest(next, inbox, []byte(req)); err != nil {
				return fmt.Errorf("ironhoard: consumer %s: pull request to %s: %w", c.cfg.Durable, next, err)
			}
			pending += n
		}
		wctx, cancel := context.WithTimeout(ctx, c.cfg.PullExpires+stallGrace)
		msg, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, context.DeadlineExceeded) {
				pending = 0 // the server said nothing of our requests: lost, ask again
				continue
			}
			if errors.Is(err, nats.ErrNoResponders) {
				// a 503 (NextMsg's error for it): nothing took the pull
				// request, e.g. the consumer's leader is being elected
				// after a server died, or JetStream is restarting; as the
				// status branch below does, back off and ask again
				pending = 0
				pause(ctx, noRespondersPause)
				continue
			}
			return fmt.Errorf("ironhoard: consumer %s: %w", c.cfg.Durable, err)
		}
		if status := msg.Header.Get("Status"); status != "" && len(msg.Data) == 0 {
			var err error
			pending, err = c.status(ctx, msg, status, pending)
			if err != nil {
				return err
			}
			continue
		}
		if pending > 0 {
			pending--
		}
		if err := c.handle(ctx, msg, h); err != nil {
			return err
		}
	}
}

// status accounts for a status message about our pull requests and says
// how many messages are still requested.
func (c *Consumer) status(ctx context.Context, msg *nats.Msg, status string, pending int) (int, error) {
	left := -1
	if s := msg.Header.Get("Nats-Pending-Messages"); s != "" {
		if n, err := strconv.Atoi(s); err == nil {
			left = n
		}
	}
	desc := msg.Header.Get("Description")
	switch status {
	case "100": // idle heartbeat: nothing to account for
		return pending, nil
	case "408", "404": // a request expired (or found nothing)
	case "409":
		if strings.Contains(strings.ToLower(desc), "consumer deleted") {
			return 0, fmt.Errorf("ironhoard: consumer %s on stream %s: deleted", c.cfg.Durable, c.stream)
		}
		if left < 0 { // e.g. exceeded max waiting, leadership change: back off a little
			pause(ctx, 100*time.Millisecond)
		}
	default: // 503 no responders (JetStream unavailable) and the like
		pause(ctx, noRespondersPause)
	}
	if left < 0 {
		return 0, nil
	}
	if pending -= left; pending < 0 {
		pending = 0
	}
	return pending, nil
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// handle refuses, or hands over and acks, one message. Its error is the
// connection's failure.
func (c *Consumer) handle(ctx context.Context, msg *nats.Msg, h Handler) error {
	var streamSeq, delivered uint64
	if meta, err := msg.Metadata(); err == nil {
		streamSeq, delivered = meta.Sequence.Stream, meta.NumDelivered
	}
	m, err := ParseMessage(msg.Data, msg.Header)
	if err == nil {
		err = c.cfg.Keyring.CheckMove(&m)
	}
	if err == nil && m.GameID != c.cfg.Game {
		err = fmt.Errorf("a move of game %d on the subject of game %d", m.GameID, c.cfg.Game)
	}
	if err != nil {
		c.metrics.refused.Add(1)
		if c.cfg.OnRefused != nil {
			c.cfg.OnRefused(Refusal{Game: c.cfg.Game, StreamSeq: streamSeq, Subject: msg.Subject, Reason: err})
		}
		return ackErr(msg.Term())
	}
	m.StreamSeq, m.Delivered = streamSeq, delivered
	if m.OutOfOrder = c.seqs.outOfOrder(m.PlayerID, m.Seq); m.OutOfOrder {
		c.metrics.outOfOrder.Add(1)
	}
	c.metrics.journey.Record(time.Duration(time.Now().UnixNano() - int64(m.RecvUnixNs)))
	if err := h(ctx, &m); err != nil {
		return ackErr(msg.Nak())
	}
	c.seqs.applied(m.PlayerID, m.Seq)
	c.metrics.moves.Add(1)
	return ackErr(msg.Ack())
}

// ackErr keeps the errors of an (asynchronous) ack that mean the
// connection is gone; others (e.g. a reconnect buffer full) leave the
// message to be redelivered after the ack wait.
func ackErr(err error) error {
	if errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("ironhoard: acking: %w", err)
	}
	return nil
}

// nakBuffered naks the messages received but not handled, so that they are
// redelivered now rather than after the ack wait.
func (c *Consumer) nakBuffered(sub *nats.Subscription) {
	for {
		n, _, err := sub.Pending()
		if err != nil || n == 0 {
			return
		}
		msg, err := sub.NextMsg(10 * time.Millisecond)
		if err != nil {
			return
		}
		if msg.Header.Get("Status") == "" || len(msg.Data) > 0 {
			_ = msg.Nak()
		}
	}
}

// seqTracker remembers the last seq applied per player of one game,
// whatever the key_id.
type seqTracker struct {
	last map[uint32]uint64
}

// outOfOrder reports whether seq is not greater than the last seq applied
// for player (a player's first move is never out of order).
func (t *seqTracker) outOfOrder(player uint32, seq uint64) bool {
	last, ok := t.last[player]
	return ok && seq <= last
}

// applied records that player's move seq was applied.
func (t *seqTracker) applied(player uint32, seq uint64) {
	if last, ok := t.last[player]; !ok || seq > last {
		t.last[player] = seq
	}
}
