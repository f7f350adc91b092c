//! Errors of the consumer library: each names the server, stream, consumer
//! or file at fault.
//!
//! The underlying error is part of each message (one line, no source
//! chain to walk).

use std::path::PathBuf;

use async_nats::jetstream::consumer::pull::MessagesError;
use async_nats::jetstream::consumer::StreamError;
use async_nats::jetstream::context::GetStreamError;
use async_nats::jetstream::stream::ConsumerError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("secret file {path}: {cause}")]
    SecretRead { path: PathBuf, cause: std::io::Error },
    #[error("secret file {path}: {why}")]
    SecretFormat { path: PathBuf, why: String },
    #[error("connecting to NATS at {servers}: {cause}")]
    Connect { servers: String, cause: Box<async_nats::ConnectError> },
    #[error("stream {stream} (game {game}) on {servers}: {cause}")]
    Stream { servers: String, stream: String, game: u32, cause: Box<GetStreamError> },
    #[error("consumer {durable} on stream {stream} ({servers}): {cause}")]
    Consumer { servers: String, stream: String, durable: String, cause: Box<ConsumerError> },
    #[error("consumer {durable} on stream {stream} ({servers}): filters {found:?}, not {want} (another game's durable?)")]
    ConsumerFilter { servers: String, stream: String, durable: String, found: String, want: String },
    #[error("pulling from consumer {durable} on stream {stream} ({servers}): {cause}")]
    Pull { servers: String, stream: String, durable: String, cause: Box<StreamError> },
    #[error("pulling from consumer {durable} on stream {stream} ({servers}): {cause}")]
    Messages { servers: String, stream: String, durable: String, cause: Box<MessagesError> },
    #[error("message stream of consumer {durable} on stream {stream} ({servers}) ended")]
    Ended { servers: String, stream: String, durable: String },
}
