//! IronHoard consumer library for game servers (docs/shipping.md).
//!
//! The appliance ships every accepted move to NATS JetStream as an 82-byte
//! payload ([`ironhoard_wire::shipped`]). A game server:
//!
//! 1. loads the master secrets into a [`Keyring`];
//! 2. binds a [`GameConsumer`] per game: a durable pull consumer (explicit
//!    acks, deliver all) filtered on the game's subject, on the game's
//!    stream (partitions included);
//! 3. [`GameConsumer::run`]s it with an async callback. Every message is
//!    parsed ([`ShippedMove`]) and its tag verified with the player key
//!    derived from the master secret of its key_id; a message that does not
//!    parse or verify is never handed to the callback, it is terminated
//!    (`+TERM`), counted and reported. A verified move is acked once the
//!    callback returns `Ok`, nak'ed (redelivered) on `Err`. A move whose seq
//!    is not above the last seen for its player is flagged out of order.
//!
//! [`GameMetrics`] counts moves, refusals, out-of-order moves and the
//! journey time (appliance receive → callback) per game, as JSON
//! ([`JourneySnapshot`]) and Prometheus text ([`prometheus_text`]).
#![forbid(unsafe_code)]

mod consumer;
mod error;
mod keyring;
mod metrics;
mod order;
mod shipped_move;

pub use consumer::{connect, ConsumerConfig, GameConsumer, Refused, RunEnd};
pub use error::Error;
pub use keyring::Keyring;
pub use metrics::{now_unix_ns, prometheus_text, GameMetrics, JourneySnapshot, Summary};
pub use order::OrderTracker;
pub use shipped_move::{Refusal, ShippedMove};
