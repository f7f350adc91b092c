//! Errors of the consumer library: each names the server, stream, consumer
//! or file at fault.

use std::path::PathBuf;

use async_nats::jetstream::consumer::pull::MessagesError;
use async_nats::jetstream::consumer::StreamError;
use async_nats::jetstream::context::GetStreamError;
use async_nats::jetstream::stream::ConsumerError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("secret file {path}: {source}")]
    SecretRead { path: PathBuf, source: std::io::Error },
    #[error("secret file {path}: {why}")]
    SecretFormat { path: PathBuf, why: String },
    #[error("connecting to NATS at {servers}: {source}")]
    Connect { servers: String, source: Box<async_nats::ConnectError> },
    #[error("stream {stream} (game {game}) on {servers}: {source}")]
    Stream { servers: String, stream: String, game: u32, source: Box<GetStreamError> },
    #[error("consumer {durable} on stream {stream} ({servers}): {source}")]
    Consumer { servers: String, stream: String, durable: String, source: Box<ConsumerError> },
    #[error("consumer {durable} on stream {stream} ({servers}): filters {found:?}, not {want} (another game's durable?)")]
    ConsumerFilter { servers: String, stream: String, durable: String, found: String, want: String },
    #[error("pulling from consumer {durable} on stream {stream} ({servers}): {source}")]
    Pull { servers: String, stream: String, durable: String, source: Box<StreamError> },
    #[error("pulling from consumer {durable} on stream {stream} ({servers}): {source}")]
    Messages { servers: String, stream: String, durable: String, source: Box<MessagesError> },
    #[error("message stream of consumer {durable} on stream {stream} ({servers}) ended")]
    Ended { servers: String, stream: String, durable: String },
}
