//! A game's durable pull consumer: verified moves to an async callback,
//! acked after it, refused messages terminated.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use async_nats::jetstream::consumer::pull::{Config as PullConfig, MessagesErrorKind};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use ironhoard_wire::shipped::{HOST_HEADER, Subject, StreamName};

use crate::{now_unix_ns, Error, GameMetrics, Keyring, OrderTracker, Refusal, ShippedMove};

/// Where a game's moves are and which durable consumer reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Stream base name (`MOVES`); with partitions the game's stream is
    /// `<stream>_<partition>`.
    pub stream: String,
    /// Subject prefix (`ih.moves`).
    pub prefix: String,
    /// The shipper's `partitions` (1: no partitioning).
    pub partitions: u16,
    pub game_id: u32,
    /// Durable consumer name (created on the game's stream if absent).
    pub durable: String,
    /// Most unacked messages the server delivers at once.
    pub max_ack_pending: i64,
}

impl ConsumerConfig {
    /// Game `game_id`'s consumer `durable` with the defaults (stream
    /// `MOVES`, prefix `ih.moves`, one partition).
    pub fn new(game_id: u32, durable: impl Into<String>) -> ConsumerConfig {
        ConsumerConfig {
            stream: "MOVES".into(),
            prefix: "ih.moves".into(),
            partitions: 1,
            game_id,
            durable: durable.into(),
            max_ack_pending: 10_000,
        }
    }

    /// The game's subject.
    pub fn subject(&self) -> String {
        Subject { prefix: &self.prefix, game_id: self.game_id, partitions: self.partitions }.to_string()
    }

    /// The stream holding the game's moves.
    pub fn stream_name(&self) -> String {
        StreamName { stream: &self.stream, game_id: self.game_id, partitions: self.partitions }.to_string()
    }
}

/// A message refused: terminated, counted, never handed to the game.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub game_id: u32,
    pub stream: String,
    pub stream_seq: u64,
    pub msg_id: Option<String>,
    pub reason: Refusal,
}

/// How [`GameConsumer::run`] ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The shutdown future completed.
    Shutdown,
}

/// One game's consumer.
pub struct GameConsumer {
    consumer: PullConsumer,
    cfg: ConsumerConfig,
    servers: String,
    stream: String,
    keys: Arc<Keyring>,
    metrics: Arc<GameMetrics>,
    order: OrderTracker,
}

impl std::fmt::Debug for GameConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GameConsumer").field("cfg", &self.cfg).field("servers", &self.servers).field("stream", &self.stream).finish()
    }
}

/// Connects to NATS (`servers`: `nats://host:port`, tried in turn).
pub async fn connect(servers: &[String], name: &str) -> Result<async_nats::Client, Error> {
    async_nats::ConnectOptions::new()
        .name(name)
        .connect(servers)
        .await
        .map_err(|source| Error::Connect { servers: servers.join(","), cause: Box::new(source) })
}

impl GameConsumer {
    /// Connects to NATS (see [`connect`]); `servers` also names the server
    /// in errors.
    pub async fn connect(servers: &[String], name: &str) -> Result<async_nats::Client, Error> {
        connect(servers, name).await
    }

    /// Binds the game's durable pull consumer on the game's stream,
    /// creating it (explicit acks, deliver all, filtered on the game's
    /// subject) if absent. `servers` names the server in errors.
    pub async fn bind(client: async_nats::Client, servers: &str, cfg: ConsumerConfig, keys: Arc<Keyring>) -> Result<GameConsumer, Error> {
        let js = jetstream::new(client);
        let stream_name = cfg.stream_name();
        let subject = cfg.subject();
        let stream = js.get_stream(&stream_name).await.map_err(|source| Error::Stream {
            servers: servers.into(),
            stream: stream_name.clone(),
            game: cfg.game_id,
            cause: Box::new(source),
        })?;
        let consumer: PullConsumer = stream
            .get_or_create_consumer(
                &cfg.durable,
                PullConfig {
                    durable_name: Some(cfg.durable.clone()),
                    ack_policy: AckPolicy::Explicit,
                    deliver_policy: DeliverPolicy::All,
                    filter_subject: subject.clone(),
                    max_ack_pending: cfg.max_ack_pending,
                    ..Default::default()
                },
            )
            .await
            .map_err(|source| Error::Consumer {
                servers: servers.into(),
                stream: stream_name.clone(),
                durable: cfg.durable.clone(),
                cause: Box::new(source),
            })?;
        let found = consumer.cached_info().config.filter_subject.clone();
        let filters = &consumer.cached_info().config.filter_subjects;
        if found != subject && !(found.is_empty() && filters.len() == 1 && filters[0] == subject) {
            return Err(Error::ConsumerFilter {
                servers: servers.into(),
                stream: stream_name,
                durable: cfg.durable.clone(),
                found: if found.is_empty() { filters.join(",") } else { found },
                want: subject,
            });
        }
        Ok(GameConsumer {
            consumer,
            metrics: Arc::new(GameMetrics::new(cfg.game_id)),
            cfg,
            servers: servers.into(),
            stream: stream_name,
            keys,
            order: OrderTracker::new(),
        })
    }

    /// This game's counters and journey histogram (shared: read them while
    /// [`run`](Self::run) goes on).
    pub fn metrics(&self) -> Arc<GameMetrics> {
        self.metrics.clone()
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.cfg
    }

    /// The stream the consumer reads.
    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    /// Consumes until `shutdown` completes.
    ///
    /// Each verified move goes to `apply` as soon as it arrives (the pull
    /// requests are pipelined by async-nats); it is acked once `apply`
    /// returns `Ok`, nak'ed (redelivered) on `Err`. A message that does
    /// not parse or verify is terminated, counted, logged and reported to
    /// `on_refused`; it never reaches `apply`. Acks are published without
    /// waiting for the server's reply.
    pub async fn run<F, Fut, E, R, S>(&mut self, mut apply: F, mut on_refused: R, shutdown: S) -> Result<RunEnd, Error>
    where
        F: FnMut(ShippedMove) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
        R: FnMut(&Refused),
        S: Future<Output = ()>,
    {
        let mut messages = self.consumer.messages().await.map_err(|source| Error::Pull {
            servers: self.servers.clone(),
            stream: self.stream.clone(),
            durable: self.cfg.durable.clone(),
            cause: Box::new(source),
        })?;
        tokio::pin!(shutdown);
        loop {
            let next = tokio::select! {
                biased;
                () = &mut shutdown => return Ok(RunEnd::Shutdown),
                next = messages.next() => next,
            };
            let msg = match next {
                None => {
                    return Err(Error::Ended {
                        servers: self.servers.clone(),
                        stream: self.stream.clone(),
                        durable: self.cfg.durable.clone(),
                    })
                }
                Some(Err(e)) => match e.kind() {
                    MessagesErrorKind::ConsumerDeleted | MessagesErrorKind::PushBasedConsumer => {
                        return Err(Error::Messages {
                            servers: self.servers.clone(),
                            stream: self.stream.clone(),
                            durable: self.cfg.durable.clone(),
                            cause: Box::new(e),
                        })
                    }
                    _ => {
                        log::warn!("consumer {} on stream {}: {e}", self.cfg.durable, self.stream);
                        continue;
                    }
                },
                Some(Ok(msg)) => msg,
            };
            self.handle(msg, &mut apply, &mut on_refused).await;
        }
    }

    async fn handle<F, Fut, E, R>(&mut self, msg: jetstream::Message, apply: &mut F, on_refused: &mut R)
    where
        F: FnMut(ShippedMove) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
        R: FnMut(&Refused),
    {
        let stream_seq = msg.info().map_or(0, |i| i.stream_sequence);
        let header = |name: &str| msg.message.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
        let msg_id = header(async_nats::header::NATS_MESSAGE_ID.as_ref());
        let parsed = ShippedMove::parse(&msg.message.payload).and_then(|m| {
            if m.repr.game_id != self.cfg.game_id {
                return Err(Refusal::WrongGame { found: m.repr.game_id, want: self.cfg.game_id });
            }
            m.verify(&self.keys)?;
            Ok(m)
        });
        let mut mv = match parsed {
            Ok(mv) => mv,
            Err(reason) => {
                self.metrics.record_refused();
                let r = Refused { game_id: self.cfg.game_id, stream: self.stream.clone(), stream_seq, msg_id, reason };
                log::warn!("refused game {} stream {} seq {}: {}", r.game_id, r.stream, r.stream_seq, r.reason);
                on_refused(&r);
                if let Err(e) = msg.ack_with(AckKind::Term).await {
                    log::warn!("terminating stream {} seq {stream_seq}: {e}", self.stream);
                }
                return;
            }
        };
        mv.host = header(HOST_HEADER);
        mv.msg_id = msg_id;
        mv.stream_seq = stream_seq;
        mv.out_of_order = !self.order.check(mv.repr.game_id, mv.repr.player_id, mv.repr.seq);
        if mv.out_of_order {
            self.metrics.record_out_of_order();
        }
        let (game, player, seq) = (mv.repr.game_id, mv.repr.player_id, mv.repr.seq);
        self.metrics.record_journey(mv.recv_unix_ns, now_unix_ns());
        match apply(mv).await {
            Ok(()) => {
                self.order.commit(game, player, seq);
                self.metrics.record_move();
                if let Err(e) = msg.ack().await {
                    log::warn!("acking stream {} seq {stream_seq}: {e}", self.stream);
                }
            }
            Err(e) => {
                log::warn!("game {game} did not apply player {player} seq {seq} (stream {} seq {stream_seq}): {e}; nak", self.stream);
                if let Err(e) = msg.ack_with(AckKind::Nak(None)).await {
                    log::warn!("nak stream {} seq {stream_seq}: {e}", self.stream);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_and_without_partitions() {
        let mut c = ConsumerConfig::new(1, "d");
        assert_eq!((c.subject(), c.stream_name()), ("ih.moves.1".into(), "MOVES".into()));
        c.partitions = 8; // fnv1a32("1") % 8 = 4 (clients/testdata/shipped-v1.json)
        assert_eq!((c.subject(), c.stream_name()), ("ih.moves.4.1".into(), "MOVES_4".into()));
    }
}
