//! The IronHoard validation engine (sans-I/O, like `quinn-proto`).
//!
//! Given the bytes of one UDP payload received on the move port, an
//! [`Engine`] decides what to do with it — drop silently (with a reason) or
//! ack with a status — and, for an ack, writes the 48 ack bytes over the
//! start of the same buffer. It never allocates, locks or makes a system
//! call: every backend (socket workers, AF_XDP pollers) owns one engine per
//! worker and calls [`Engine::process`] on its receive buffers.

pub mod bucket;
pub mod counters;
pub mod engine;
pub mod keycache;
pub mod keyring;
pub mod slots;
pub mod table;
pub mod testing;
pub mod window;

pub use counters::{Counters, SharedCounters, Snapshot};
pub use engine::{Dispatch, Engine, EngineConfig, NoDispatch, RestoreError, Verdict, PREFETCH_AHEAD};
pub use window::ReplayWindow;
pub use ironhoard_common::DropReason;
pub use keycache::{KeyCache, DEFAULT_KEY_CACHE_SLOTS, MAX_KEY_CACHE_SLOTS};
pub use keyring::Keyring;
pub use table::{KeySet, Keyed, PlayerId, PlayerTable, KEYED_SLOTS};
