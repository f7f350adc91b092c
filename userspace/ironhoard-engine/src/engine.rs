//! The per-worker validation engine.

use std::sync::Arc;

use ironhoard_common::DropReason;
use ironhoard_wire::{
    ack_in_place, ack_in_place_presigned, Error as WireError, Kind, Move, PlayerMac, Presigned, Status, ACK_LEN,
    MOVE_LEN,
};

use crate::bucket::{BucketConfig, TokenBucket};
use crate::counters::Counters;
use crate::keycache::{KeyCache, DEFAULT_KEY_CACHE_SLOTS};
use crate::keyring::Keyring;
use crate::table::{Keyed, PlayerId, PlayerState, PlayerTable, Slot};
use crate::window::{ReplayWindow, WindowCheck};

/// Game rules and limits an engine enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Valid x are `0..board_width`.
    pub board_width: u16,
    /// Valid y are `0..board_height`.
    pub board_height: u16,
    /// Per-player token bucket.
    pub bucket: BucketConfig,
    /// Player table capacity of this worker.
    pub players: usize,
}

/// What to do with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send nothing; counted under the reason.
    Drop(DropReason),
    /// The first [`ACK_LEN`] bytes of the buffer now hold the ack to send
    /// back to the datagram's source.
    Ack(Status),
}

/// Where accepted moves go. `offer` copies the 64 signed move bytes (the
/// buffer is overwritten by the ack right after) and returns `false` when it
/// has no room, which turns the move into BUSY: nothing is recorded and the
/// client retries. It must not block, lock or allocate.
pub trait Dispatch {
    fn offer(&mut self, mv: &[u8; MOVE_LEN], recv_ns: u64) -> bool;
    /// Called by the backend after a batch is judged and before its acks
    /// are sent (a dispatcher with a per-batch sync policy syncs here).
    #[inline]
    fn commit(&mut self) {}
}

/// Why [`Engine::restore`] could not take a player's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("no keyed state: none of the player's key_ids is live (its logged moves cannot be replayed)")]
    NoKeyedState,
    #[error("player table full")]
    TableFull,
}

/// A dispatcher with unlimited room that keeps nothing: for backends and
/// benchmarks run without a move log.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoDispatch;

impl Dispatch for NoDispatch {
    #[inline]
    fn offer(&mut self, _mv: &[u8; MOVE_LEN], _recv_ns: u64) -> bool {
        true
    }
}

/// One worker's engine: its player table, the shared keyring, its counters.
pub struct Engine {
    cfg: EngineConfig,
    keys: Arc<Keyring>,
    table: PlayerTable,
    /// Bad tags seen lately from known players, decaying by one per genuine
    /// move (see [`SUSPICION_PER_FORGERY`]): while it is zero the ACCEPTED
    /// ack is signed alongside the check.
    suspicion: u32,
    /// Key epoch: bumped by every reload that retires or re-keys a key_id.
    epoch: u32,
    /// The epoch that last retired or re-keyed each key_id (0: never).
    retired_at: [u32; 256],
    /// A reload retired or re-keyed a key_id: the next table slot the
    /// sweep that frees entries left without keyed state looks at.
    sweep: Option<usize>,
    /// Table slots swept since start (a reload that changes no key sweeps
    /// none).
    swept: u64,
    /// Keyed states of the players whose moves this engine authenticated
    /// for another poller ([`authenticate`](Self::authenticate)).
    keycache: KeyCache,
    /// Counters of this engine's verdicts (the backend adds rx/tx).
    pub counters: Counters,
}

/// Table slots a poller's sweep looks at between two batches: at most a
/// few hundred microseconds of work.
pub const SWEEP_SLOTS: usize = 4096;

/// Signing the ACCEPTED ack alongside the tag check
/// ([`Move::verify_tag_presign`]) makes a genuine move cheaper (the two
/// tags overlap: ~136 ns where check then sign takes ~183 ns) and a forgery
/// dearer (~136 ns where the check alone takes ~98 ns). So the engine
/// speculates only while forgeries are rare: each bad tag from a known
/// player turns it off for this many genuine moves, and a flood that is
/// more than 1 part in 65 forged keeps it off, every move then paying the
/// plain costs.
pub const SUSPICION_PER_FORGERY: u32 = 64;

/// The most a flood can raise the suspicion: presigning resumes at most
/// this many genuine moves after the flood ends.
const MAX_SUSPICION: u32 = 1 << 20;

impl Engine {
    /// Allocates the player table and the key cache (the only allocations
    /// an engine makes).
    pub fn new(cfg: EngineConfig, keys: Arc<Keyring>, hash_seed: u64) -> Engine {
        Engine::with_key_cache(cfg, keys, hash_seed, DEFAULT_KEY_CACHE_SLOTS)
    }

    /// [`new`](Self::new) with a key cache of `key_cache_slots` (0: none,
    /// every handed move derives its player's key, as before the cache).
    pub fn with_key_cache(cfg: EngineConfig, keys: Arc<Keyring>, hash_seed: u64, key_cache_slots: usize) -> Engine {
        Engine {
            keycache: KeyCache::new(key_cache_slots, hash_seed.rotate_left(17) ^ 0x6b63),
            cfg,
            keys,
            table: PlayerTable::new(cfg.players, hash_seed),
            suspicion: 0,
            epoch: 0,
            retired_at: [0; 256],
            sweep: None,
            swept: 0,
            counters: Counters::default(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Checks a move's header and tag without judging it (no player state
    /// touched): the drop reason when it is not authentic.
    /// A poller runs it on a move it hands to the player's owner, so
    /// forgeries never reach another poller's mailbox; the owner then
    /// trusts the check ([`process_handed`](Self::process_handed)). The
    /// player's keyed state comes from the key cache (a hit costs the check
    /// alone: two SHA-256 compressions), or is derived and, once the tag
    /// verified, cached.
    pub fn authenticate(&mut self, buf: &[u8]) -> Result<(), DropReason> {
        let m = Move::new_unchecked(buf);
        m.check_header().map_err(header_drop)?;
        let (key_id, game, player) = (m.key_id(), m.game_id(), m.player_id());
        if let Some(mac) = self.keycache.get(game, player, key_id, self.epoch) {
            return if m.verify_tag(mac) { Ok(()) } else { Err(DropReason::BadTag) };
        }
        let mac = derive_verified(&self.keys, &m, true)?;
        self.keycache.put(game, player, key_id, self.epoch, &mac);
        Ok(())
    }

    /// Key cache lookups since start: (hits, misses).
    pub fn key_cache_stats(&self) -> (u64, u64) {
        self.keycache.stats()
    }

    /// Answers a move [`authenticate`](Self::authenticate) accepted BUSY in
    /// place (a poller whose handoff to the owner failed: the move is
    /// answered, never dropped silently). Signed with the cached key (or
    /// one derived again, without a cache).
    pub fn answer_busy(&mut self, buf: &mut [u8]) {
        let m = Move::new_unchecked(&*buf);
        let (key_id, game, player) = (m.key_id(), m.game_id(), m.player_id());
        let derived;
        let mac = match self.keycache.get(game, player, key_id, self.epoch) {
            Some(mac) => mac,
            None => {
                let Some(master) = self.keys.get(key_id) else { return };
                derived = master.player_mac(game, player);
                &derived
            }
        };
        ack_in_place(buf, Status::Busy, mac);
        self.counters.count_status(Status::Busy);
    }

    /// Applies a reloaded configuration without losing a window: new board
    /// and rate limits (`cfg.players` is fixed at start and ignored), a new
    /// keyring. Touches no player: the buckets take the new rate and burst
    /// at their next use (a refill caps at the burst). A key_id that is
    /// gone, or now has another secret, is retired at once — a player's
    /// keyed state under it is checked against the key epoch at the
    /// player's next move, so no move verifies under a retired secret —
    /// and a sweep is started that frees, in slices
    /// ([`sweep_step`](Self::sweep_step)), the entries left with no keyed
    /// state. Returns whether a sweep is pending. No allocation.
    pub fn begin_reconfigure(&mut self, cfg: EngineConfig, keys: Arc<Keyring>) -> bool {
        let mut retired = false;
        for k in self.keys.ids() {
            if !self.keys.same_secret(&keys, k) {
                if !retired {
                    self.epoch = self.epoch.wrapping_add(1);
                    retired = true;
                }
                self.retired_at[k as usize] = self.epoch;
            }
        }
        self.cfg = EngineConfig { players: self.cfg.players, ..cfg };
        self.keys = keys;
        if retired {
            // (re)start from the first slot: entries behind a cursor of an
            // earlier sweep are of an older epoch again
            self.sweep = Some(0);
        }
        self.sweep.is_some()
    }

    /// One slice of the pending sweep: at most `slots` table slots, each
    /// entry brought to the current key epoch and freed if no keyed state
    /// is left. Returns the entries freed.
    pub fn sweep_step(&mut self, slots: usize) -> usize {
        let Some(from) = self.sweep else { return 0 };
        let (epoch, retired_at) = (self.epoch, &self.retired_at);
        let (next, removed) = self.table.retain_slice(from, slots, |_, st| st.revalidate(epoch, retired_at));
        self.swept += (next - from) as u64;
        self.sweep = (next < self.table.slots()).then_some(next);
        removed
    }

    /// Whether a sweep started by a reload is still going.
    #[inline]
    pub fn sweeping(&self) -> bool {
        self.sweep.is_some()
    }

    /// Table slots swept since start.
    pub fn slots_swept(&self) -> u64 {
        self.swept
    }

    /// [`begin_reconfigure`](Self::begin_reconfigure), then the whole sweep
    /// at once; returns the players freed. For callers with no batches to
    /// interleave (tests, tools).
    pub fn reconfigure(&mut self, cfg: EngineConfig, keys: Arc<Keyring>, _now_ns: u64) -> usize {
        self.begin_reconfigure(cfg, keys);
        let mut n = 0;
        while self.sweeping() {
            n += self.sweep_step(usize::MAX);
        }
        n
    }

    /// Whether known players' ACCEPTED acks are being signed alongside the
    /// tag check (no forgery among the last [`SUSPICION_PER_FORGERY`]
    /// genuine moves).
    pub fn presigning(&self) -> bool {
        self.suspicion == 0
    }

    /// Players in this worker's table.
    pub fn players(&self) -> usize {
        self.table.len()
    }

    /// Whether the player table is advised for transparent hugepages
    /// ([`PlayerTable::hugepage_advised`]): for the worker's start-up line.
    pub fn table_hugepage_advised(&self) -> Option<bool> {
        self.table.hugepage_advised()
    }

    /// Puts a player rebuilt from the move log at start into the table, so
    /// a move accepted before a restart is DUPLICATE or STALE after it,
    /// under any key_id, never accepted again: `window` holds the seqs of
    /// its records, `keyed` its live keyed states (from
    /// [`Keyring::keyed_state`] of its newest record per key_id), most
    /// recently used first; the first [`KEYED_SLOTS`](crate::table::KEYED_SLOTS)
    /// are cached. Buckets full.
    pub fn restore(&mut self, id: PlayerId, window: ReplayWindow, keyed: &[Keyed], now_ns: u64) -> Result<(), RestoreError> {
        let full = TokenBucket::full(&self.cfg.bucket, now_ns);
        let mut st = PlayerState::restored(keyed, window, full, full).ok_or(RestoreError::NoKeyedState)?;
        st.epoch = self.epoch;
        match self.table.lookup(&id) {
            Slot::Found(slot) => {
                *self.table.get_mut(slot).expect("found slot holds a state") = st;
                Ok(())
            }
            Slot::Vacant(slot) => self.table.insert(slot, id, st).map(|_| ()).map_err(|_| RestoreError::TableFull),
        }
    }

    /// Prefetch hints for a batch of `n` received moves, before the first
    /// is judged (`payload(i)`: the i-th move's UDP payload; anything
    /// without a move header is skipped): every move's own lines, then
    /// every player's key-array line, then the states of the first
    /// [`PREFETCH_AHEAD`]. Then, before each move is judged,
    /// [`prefetch_ahead`](Self::prefetch_ahead). The moves' misses (the
    /// kernel wrote them from another core; a move after a 42-byte header
    /// spans two lines) and the table's two per move (key line, then state)
    /// overlap across the batch instead of following one another (see
    /// [`PlayerTable::prefetch_key`]). Hints only: they change no verdict.
    #[inline]
    pub fn prefetch_batch<'p>(&self, n: usize, payload: impl Fn(usize) -> &'p [u8]) {
        for i in 0..n {
            crate::table::prefetch(payload(i));
        }
        for i in 0..n {
            if let Some(id) = player_of(payload(i)) {
                self.table.prefetch_key(&id);
            }
        }
        for i in 0..n.min(PREFETCH_AHEAD) {
            self.prefetch_state(payload(i));
        }
    }

    /// Before move `i` of a batch of `n` is judged: the state of the move
    /// [`PREFETCH_AHEAD`] places later, if there is one.
    #[inline]
    pub fn prefetch_ahead<'p>(&self, i: usize, n: usize, payload: impl Fn(usize) -> &'p [u8]) {
        if i + PREFETCH_AHEAD < n {
            self.prefetch_state(payload(i + PREFETCH_AHEAD));
        }
    }

    #[inline]
    fn prefetch_state(&self, payload: &[u8]) {
        if let Some(id) = player_of(payload) {
            self.table.prefetch_state(&id);
        }
    }

    /// Judges the UDP payload `buf` received at `now_ns` (monotonic clock)
    /// and, for an ack, writes it over `buf[..48]`. Counts the verdict.
    #[inline]
    pub fn process<D: Dispatch>(&mut self, buf: &mut [u8], now_ns: u64, dispatch: &mut D) -> Verdict {
        let v = self.judge::<D, false>(buf, now_ns, dispatch);
        match v {
            Verdict::Drop(r) => self.counters.count_drop(r),
            Verdict::Ack(s) => self.counters.count_status(s),
        }
        v
    }

    /// [`process`](Self::process) for a move another poller handed over.
    /// `authenticated`: that poller's [`authenticate`](Self::authenticate)
    /// verified its tag under the same keys as this engine's (the caller
    /// checks both applied the same reload), so the tag is not checked
    /// again: the owner pays only the ack's signature, and a handed move
    /// costs about what one that arrived on its owner's queue does.
    /// Everything else (window, board, rate, the table) is judged as ever.
    #[inline]
    pub fn process_handed<D: Dispatch>(&mut self, buf: &mut [u8], now_ns: u64, dispatch: &mut D, authenticated: bool) -> Verdict {
        let v = if authenticated {
            self.judge::<D, true>(buf, now_ns, dispatch)
        } else {
            self.judge::<D, false>(buf, now_ns, dispatch)
        };
        match v {
            Verdict::Drop(r) => self.counters.count_drop(r),
            Verdict::Ack(s) => self.counters.count_status(s),
        }
        v
    }

    /// `TRUSTED`: the tag was verified by [`authenticate`](Self::authenticate)
    /// under this engine's keys (a handed move); it is not checked again.
    fn judge<D: Dispatch, const TRUSTED: bool>(&mut self, buf: &mut [u8], now_ns: u64, dispatch: &mut D) -> Verdict {
        let m = Move::new_unchecked(&*buf);
        if let Err(e) = m.check_header() {
            return Verdict::Drop(header_drop(e));
        }
        // One entry per player, whatever the key_id (SPEC §1: one window).
        let id = PlayerId { game_id: m.game_id(), player_id: m.player_id() };
        let mut found = self.table.lookup(&id);
        if let Slot::Found(slot) = found {
            let st = self.table.get_mut(slot).expect("found slot holds a state");
            if st.epoch != self.epoch && !st.revalidate(self.epoch, &self.retired_at) {
                // a reload retired every key it had a move under: freed
                // now, as the sweep would have; the move is a new player's
                self.table.remove(slot);
                found = self.table.lookup(&id);
            }
        }
        match found {
            Slot::Found(slot) => self.judge_player::<D, TRUSTED>(slot, buf, now_ns, dispatch),
            Slot::Vacant(slot) => self.judge_newcomer::<D, TRUSTED>(slot, id, buf, now_ns, dispatch),
        }
    }

    /// A move of the player in table slot `slot`: its tag under the
    /// player's cached keyed state (or, under a key_id it has no state for
    /// yet, a freshly derived one), then the rules.
    #[inline(always)]
    fn judge_player<D: Dispatch, const TRUSTED: bool>(
        &mut self,
        slot: usize,
        buf: &mut [u8],
        now_ns: u64,
        dispatch: &mut D,
    ) -> Verdict {
        let m = Move::new_unchecked(&*buf);
        let key_id = m.key_id();
        let cfg = self.cfg;
        let st = self.table.get_mut(slot).expect("found slot holds a state");
        let (k, pre) = match st.mac_slot(key_id) {
            Some(k) if TRUSTED => (st.touch(k), None),
            Some(k) => match verify_watchfully(&mut self.suspicion, &m, st.mac(k)) {
                Ok(pre) => (st.touch(k), pre),
                Err(r) => return Verdict::Drop(r),
            },
            // A known player under a key_id whose keyed state is not cached
            // (a key rotation): derive it as for a new player, and cache it
            // once it verified.
            None => match derive_verified(&self.keys, &m, !TRUSTED) {
                Ok(mac) => (st.cache(Keyed { key_id, mac }), None),
                Err(r) => return Verdict::Drop(r),
            },
        };
        let status = match judge_known(&cfg, st, &m, now_ns, dispatch) {
            Ok(s) => s,
            Err(r) => return Verdict::Drop(r),
        };
        ack_in_place_presigned(buf, status, st.mac(k), pre.as_ref());
        Verdict::Ack(status)
    }

    /// A move of a player not in the table (vacant `slot`). Cold path:
    /// derive the player key (the keyed master state is cached, so this is
    /// one HMAC plus keying the player's).
    #[inline]
    fn judge_newcomer<D: Dispatch, const TRUSTED: bool>(
        &mut self,
        slot: usize,
        id: PlayerId,
        buf: &mut [u8],
        now_ns: u64,
        dispatch: &mut D,
    ) -> Verdict {
        let m = Move::new_unchecked(&*buf);
        let key_id = m.key_id();
        let mac = match derive_verified(&self.keys, &m, !TRUSTED) {
            Ok(mac) => mac,
            Err(r) => return Verdict::Drop(r),
        };
        // Authenticated. Stateless rules first; the player is only given a
        // slot once it needs state.
        if is_invalid(&self.cfg, &m) {
            return ack_with(buf, Status::Invalid, &mac);
        }
        if self.table.is_full() {
            return ack_with(buf, Status::Busy, &mac);
        }
        let full = TokenBucket::full(&self.cfg.bucket, now_ns);
        let mut st = PlayerState::new(Keyed { key_id, mac }, ReplayWindow::new(), full, full);
        st.epoch = self.epoch;
        let status = match judge_known(&self.cfg, &mut st, &m, now_ns, dispatch) {
            Ok(s) => s,
            Err(r) => return Verdict::Drop(r),
        };
        ack_in_place(buf, status, st.mac(0));
        // Only a player whose move was accepted has state worth a slot; a
        // BUSY first move leaves the table unchanged.
        if status == Status::Accepted {
            self.table.insert(slot, id, st).expect("checked not full above");
        }
        Verdict::Ack(status)
    }
}

/// The drop reason of a header the wire crate's checks refuse.
#[inline(always)]
fn header_drop(e: WireError) -> DropReason {
    match e {
        WireError::WrongLength(_) => DropReason::WrongLength,
        WireError::BadMagic(_) => DropReason::BadMagic,
        WireError::BadVersion(_) => DropReason::BadVersion,
    }
}

/// Derives the move's player key under its key_id's master secret and,
/// if `verify`, checks the move's tag with it.
#[inline(always)]
fn derive_verified<T: AsRef<[u8]>>(keys: &Keyring, m: &Move<T>, verify: bool) -> Result<PlayerMac, DropReason> {
    let master = keys.get(m.key_id()).ok_or(DropReason::UnknownKeyId)?;
    let mac = master.player_mac(m.game_id(), m.player_id());
    if verify && !m.verify_tag(&mac) {
        return Err(DropReason::BadTag);
    }
    Ok(mac)
}

/// Checks a known player's tag. While `suspicion` is zero the ACCEPTED ack
/// is signed alongside the check (returned); a bad tag raises it by
/// [`SUSPICION_PER_FORGERY`], a genuine move lowers it by one.
#[inline(always)]
fn verify_watchfully<T: AsRef<[u8]>>(suspicion: &mut u32, m: &Move<T>, mac: &PlayerMac) -> Result<Option<Presigned>, DropReason> {
    if *suspicion == 0 {
        return match m.verify_tag_presign(mac) {
            Some(pre) => Ok(Some(pre)),
            None => {
                *suspicion = SUSPICION_PER_FORGERY;
                Err(DropReason::BadTag)
            }
        };
    }
    if !m.verify_tag(mac) {
        *suspicion = (*suspicion + SUSPICION_PER_FORGERY).min(MAX_SUSPICION);
        return Err(DropReason::BadTag);
    }
    *suspicion -= 1;
    Ok(None)
}

#[inline]
fn ack_with(buf: &mut [u8], status: Status, mac: &PlayerMac) -> Verdict {
    ack_in_place(buf, status, mac);
    Verdict::Ack(status)
}

#[inline]
fn is_invalid<T: AsRef<[u8]>>(cfg: &EngineConfig, m: &Move<T>) -> bool {
    m.seq() == 0
        || Kind::from_u8(m.kind()).is_none()
        || m.flags() != 0
        || m.reserved() != 0
        || m.x() >= cfg.board_width
        || m.y() >= cfg.board_height
}

/// How many moves ahead of its turn a player's state is prefetched
/// ([`Engine::prefetch_ahead`]): the state spans six cache lines, and a
/// miss to memory is a few moves' work.
pub const PREFETCH_AHEAD: usize = 4;

/// The player a move header names, if `payload` has one.
#[inline]
fn player_of(payload: &[u8]) -> Option<PlayerId> {
    let m = Move::new_unchecked(payload);
    m.check_header().ok()?;
    Some(PlayerId { game_id: m.game_id(), player_id: m.player_id() })
}

/// The SPEC's order after the tag: INVALID, STALE/DUPLICATE, RATE_LIMITED,
/// BUSY, ACCEPTED. Only ACCEPTED changes the window or takes a move token.
/// A STALE or DUPLICATE answer takes a reply token instead; without one
/// the move is dropped unanswered (`Err(ReplayOverLimit)`), so replays of a
/// captured move cannot make the appliance a reflector of signed acks.
#[inline]
fn judge_known<T: AsRef<[u8]>, D: Dispatch>(
    cfg: &EngineConfig,
    st: &mut PlayerState,
    m: &Move<T>,
    now_ns: u64,
    dispatch: &mut D,
) -> Result<Status, DropReason> {
    if is_invalid(cfg, m) {
        return Ok(Status::Invalid);
    }
    let seq = m.seq();
    let replay = match st.window.check(seq) {
        WindowCheck::Stale => Some(Status::Stale),
        WindowCheck::Duplicate => Some(Status::Duplicate),
        WindowCheck::Fresh => None,
    };
    if let Some(status) = replay {
        if !st.replies.has_token(&cfg.bucket, now_ns) {
            return Err(DropReason::ReplayOverLimit);
        }
        st.replies.take();
        return Ok(status);
    }
    if !st.bucket.has_token(&cfg.bucket, now_ns) {
        return Ok(Status::RateLimited);
    }
    let bytes: &[u8; MOVE_LEN] = m.as_bytes().try_into().expect("length checked");
    if !dispatch.offer(bytes, now_ns) {
        return Ok(Status::Busy);
    }
    st.bucket.take();
    st.window.accept(seq);
    // the player now has a move recorded under this key_id: a keyed state
    // that holds its entry until the key_id is retired or re-keyed
    st.keys.insert(m.key_id());
    Ok(Status::Accepted)
}

const _: () = assert!(ACK_LEN < MOVE_LEN);

#[cfg(test)]
mod tests {
    use super::*;
    use ironhoard_wire::{Ack, AckRepr, MasterKey, MoveRepr};

    const SECRET0: [u8; 32] = [0x11; 32];
    const SECRET1: [u8; 32] = [0x22; 32];
    const SEC: u64 = 1_000_000_000;

    fn cfg() -> EngineConfig {
        EngineConfig {
            board_width: 16,
            board_height: 8,
            bucket: BucketConfig { rate_per_second: 10, burst: 5 },
            players: 4,
        }
    }

    fn engine() -> Engine {
        Engine::new(cfg(), Arc::new(Keyring::from_secrets(&[SECRET0, SECRET1])), 7)
    }

    /// One key, and a bucket no test's moves run dry.
    fn fast_engine() -> Engine {
        Engine::new(fast_cfg(), Arc::new(Keyring::from_secrets(&[SECRET0])), 1)
    }

    fn fast_cfg() -> EngineConfig {
        EngineConfig { bucket: BucketConfig { rate_per_second: 1000, burst: 1000 }, ..cfg() }
    }

    fn repr(game: u32, player: u32, seq: u64) -> MoveRepr {
        MoveRepr {
            key_id: 0,
            kind: 1,
            flags: 0,
            reserved: 0,
            game_id: game,
            player_id: player,
            seq,
            client_ts: 0xABCD,
            x: 1,
            y: 2,
            payload: [9; 12],
        }
    }

    fn mac_for(r: &MoveRepr) -> PlayerMac {
        let s = if r.key_id == 0 { SECRET0 } else { SECRET1 };
        MasterKey::new(&s).player_mac(r.game_id, r.player_id)
    }

    /// Sends `r`, checks that an ack is well formed and signed, returns verdict.
    fn send_at(e: &mut Engine, r: &MoveRepr, now: u64, d: &mut impl Dispatch) -> Verdict {
        let mac = mac_for(r);
        let mut buf = r.to_bytes(&mac);
        let v = e.process(&mut buf, now, d);
        if let Verdict::Ack(s) = v {
            let a = Ack::new_checked(&buf[..ACK_LEN]).unwrap();
            assert!(a.verify_tag(&mac), "ack tag verifies");
            let ar = AckRepr::parse(&a).unwrap();
            assert_eq!(ar.status, s);
            assert_eq!((ar.key_id, ar.game_id, ar.player_id, ar.seq, ar.client_ts), (r.key_id, r.game_id, r.player_id, r.seq, r.client_ts));
        }
        v
    }

    fn send(e: &mut Engine, r: &MoveRepr) -> Verdict {
        send_at(e, r, 0, &mut NoDispatch)
    }

    #[test]
    fn prefetch_hints_take_any_bytes_and_change_no_verdict() {
        let mut e = fast_engine();
        let known = repr(1, 2, 1);
        assert_eq!(send(&mut e, &known), Verdict::Ack(Status::Accepted));
        let stranger = repr(5, 6, 1);
        let mut garbage = [0xA5u8; MOVE_LEN];
        garbage[..4].copy_from_slice(&known.to_bytes(&mac_for(&known))[..4]);
        let frames: [&[u8]; 6] = [
            &[],
            &[0x49; 10],
            &[0u8; MOVE_LEN],
            &garbage,
            &known.to_bytes(&mac_for(&known)),
            &stranger.to_bytes(&mac_for(&stranger)),
        ];
        e.prefetch_batch(frames.len(), |i| frames[i]);
        for i in 0..frames.len() {
            e.prefetch_ahead(i, frames.len(), |j| frames[j]);
            e.prefetch_state(frames[i]);
        }
        assert_eq!(e.players(), 1, "a hint inserts nobody");
        assert_eq!(send(&mut e, &repr(1, 2, 1)), Verdict::Ack(Status::Duplicate));
        assert_eq!(send(&mut e, &repr(1, 2, 2)), Verdict::Ack(Status::Accepted));
        assert_eq!(send(&mut e, &stranger), Verdict::Ack(Status::Accepted));
    }

    #[test]
    fn authenticate_caches_the_key_of_a_verified_move_until_a_reload_rekeys_it() {
        let mut e = engine();
        let r = repr(3, 4, 1);
        let good = r.to_bytes(&mac_for(&r));
        let mut forged = good;
        forged[60] ^= 1;
        // a forgery is refused and never cached
        assert_eq!(e.authenticate(&forged).err(), Some(DropReason::BadTag));
        assert_eq!(e.key_cache_stats(), (0, 1));
        assert!(e.authenticate(&good).is_ok());
        assert_eq!(e.key_cache_stats(), (0, 2), "derived, then cached");
        assert!(e.authenticate(&good).is_ok());
        assert_eq!(e.authenticate(&forged).err(), Some(DropReason::BadTag), "a hit still checks the tag");
        assert_eq!(e.key_cache_stats(), (2, 2));
        assert_eq!(e.players(), 0, "authenticate touches no player state");
        // key_id 0 re-keyed: the cached key is of the old epoch, the move
        // under the retired secret is refused
        const NEW0: [u8; 32] = [0x5a; 32];
        e.begin_reconfigure(cfg(), Arc::new(Keyring::from_secrets(&[NEW0, SECRET1])));
        assert_eq!(e.authenticate(&good).err(), Some(DropReason::BadTag));
        assert_eq!(e.key_cache_stats(), (2, 3));
        let fresh = r.to_bytes(&MasterKey::new(&NEW0).player_mac(3, 4));
        assert!(e.authenticate(&fresh).is_ok());
        assert!(e.authenticate(&fresh).is_ok());
        assert_eq!(e.key_cache_stats(), (3, 4));
    }

    #[test]
    fn a_handed_move_is_trusted_only_when_authenticated() {
        let mut e = engine();
        let r = repr(5, 6, 1);
        let mac = mac_for(&r);
        // the peer authenticated it: judged without a second check, the ack
        // signed with the player's key
        let mut buf = r.to_bytes(&mac);
        assert_eq!(e.process_handed(&mut buf, 0, &mut NoDispatch, true), Verdict::Ack(Status::Accepted));
        assert!(Ack::new_checked(&buf[..ACK_LEN]).unwrap().verify_tag(&mac));
        // not authenticated under this engine's keys (another reload): the
        // tag is checked as for a received move
        let r2 = repr(5, 6, 2);
        let mut forged = r2.to_bytes(&mac);
        forged[60] ^= 1;
        assert_eq!(e.process_handed(&mut forged, 0, &mut NoDispatch, false), Verdict::Drop(DropReason::BadTag));
        let mut buf = r2.to_bytes(&mac);
        assert_eq!(e.process_handed(&mut buf, 0, &mut NoDispatch, false), Verdict::Ack(Status::Accepted));
        // the window holds for handed moves as for any
        let mut again = r2.to_bytes(&mac);
        assert_eq!(e.process_handed(&mut again, 0, &mut NoDispatch, true), Verdict::Ack(Status::Duplicate));
    }

    #[test]
    fn accepted_then_duplicate() {
        let mut e = engine();
        assert_eq!(send(&mut e, &repr(1, 1, 1)), Verdict::Ack(Status::Accepted));
        assert_eq!(send(&mut e, &repr(1, 1, 1)), Verdict::Ack(Status::Duplicate));
        assert_eq!(e.counters.status(Status::Accepted), 1);
        assert_eq!(e.counters.status(Status::Duplicate), 1);
        assert_eq!(e.players(), 1);
    }

    #[test]
    fn silent_drops_by_reason() {
        let mut e = engine();
        let r = repr(1, 1, 1);
        let good = r.to_bytes(&mac_for(&r));
        for len in [0usize, 1, 47, 48, 63, 65, 128] {
            let mut b = vec![0u8; len];
            b[..len.min(64)].copy_from_slice(&good[..len.min(64)]);
            assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Drop(DropReason::WrongLength), "len {len}");
        }
        let mut b = good;
        b[1] = b'A';
        assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Drop(DropReason::BadMagic));
        let mut b = good;
        b[2] = 2;
        assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Drop(DropReason::BadVersion));
        let mut r7 = r;
        r7.key_id = 7;
        let mut b = r7.to_bytes(&mac_for(&r));
        assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Drop(DropReason::UnknownKeyId));
        let mut b = good;
        b[63] ^= 1;
        assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Drop(DropReason::BadTag));
        // signed with key 1's player key but claiming key 0
        let mut b = r.to_bytes(&MasterKey::new(&SECRET1).player_mac(1, 1));
        assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Drop(DropReason::BadTag));
        assert_eq!(e.counters.drops(DropReason::WrongLength), 7);
        assert_eq!(e.counters.drops(DropReason::BadTag), 2);
        assert_eq!(e.counters.status.iter().sum::<u64>(), 0, "nothing acked");
        assert_eq!(e.players(), 0, "no state for unauthenticated senders");
        // a dropped buffer is left as it was
        let mut b = good;
        b[63] ^= 1;
        let before = b;
        e.process(&mut b, 0, &mut NoDispatch);
        assert_eq!(b, before);
    }

    #[test]
    fn bad_tag_from_known_player_is_dropped_and_state_untouched() {
        let mut e = engine();
        assert_eq!(send(&mut e, &repr(1, 1, 5)), Verdict::Ack(Status::Accepted));
        let r = repr(1, 1, 6);
        let mut b = r.to_bytes(&mac_for(&r));
        b[50] ^= 0x80;
        assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Drop(DropReason::BadTag));
        assert_eq!(send(&mut e, &r), Verdict::Ack(Status::Accepted));
    }

    #[test]
    fn a_forgery_pauses_presigning_and_every_ack_verifies_either_way() {
        let mut e = fast_engine();
        let forge = |e: &mut Engine, seq| {
            let r = repr(1, 1, seq);
            let mut b = r.to_bytes(&mac_for(&r));
            b[60] ^= 0x04;
            assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Drop(DropReason::BadTag));
        };
        // send() checks every ack's tag: presigned ACCEPTED, re-signed others
        assert_eq!(send(&mut e, &repr(1, 1, 1)), Verdict::Ack(Status::Accepted));
        assert!(e.presigning());
        assert_eq!(send(&mut e, &repr(1, 1, 1)), Verdict::Ack(Status::Duplicate));
        forge(&mut e, 2);
        assert!(!e.presigning());
        for seq in 2..(2 + SUSPICION_PER_FORGERY as u64) {
            assert!(!e.presigning(), "seq {seq}");
            assert_eq!(send(&mut e, &repr(1, 1, seq)), Verdict::Ack(Status::Accepted));
        }
        assert!(e.presigning(), "back on after {SUSPICION_PER_FORGERY} genuine moves");
        // forgeries mixed in faster than they decay keep it off
        for seq in 100..400u64 {
            if seq % 32 == 0 {
                forge(&mut e, seq);
            }
            assert_eq!(send(&mut e, &repr(1, 1, seq)), Verdict::Ack(Status::Accepted));
            assert!(seq < 128 || !e.presigning(), "seq {seq}");
        }
        assert_eq!(send(&mut e, &repr(1, 1, 399)), Verdict::Ack(Status::Duplicate));
    }

    #[test]
    fn invalid_rules() {
        let mut e = fast_engine();
        let cases: [fn(&mut MoveRepr); 8] = [
            |r| r.seq = 0,
            |r| r.kind = 0,
            |r| r.kind = 4,
            |r| r.flags = 1,
            |r| r.reserved = 0x0100,
            |r| r.x = 16,
            |r| r.y = 8,
            |r| {
                r.x = u16::MAX;
                r.y = u16::MAX
            },
        ];
        for (i, f) in cases.iter().enumerate() {
            let mut r = repr(2, i as u32, 1);
            f(&mut r);
            assert_eq!(send(&mut e, &r), Verdict::Ack(Status::Invalid), "case {i}");
            // and for a known player too
            let mut r = repr(1, 1, 10 + i as u64);
            assert_eq!(send(&mut e, &r), Verdict::Ack(Status::Accepted));
            r.seq += 100;
            f(&mut r);
            assert_eq!(send(&mut e, &r), Verdict::Ack(Status::Invalid), "known case {i}");
        }
        // edges of the board are on it
        let mut r = repr(3, 3, 1);
        r.x = 15;
        r.y = 7;
        assert_eq!(send(&mut e, &r), Verdict::Ack(Status::Accepted));
        for k in [2u8, 3] {
            let mut r = repr(3, 3, 1 + k as u64);
            r.kind = k;
            assert_eq!(send(&mut e, &r), Verdict::Ack(Status::Accepted));
        }
    }

    #[test]
    fn invalid_is_judged_before_duplicate() {
        let mut e = engine();
        assert_eq!(send(&mut e, &repr(1, 1, 3)), Verdict::Ack(Status::Accepted));
        let mut r = repr(1, 1, 3);
        r.x = 99;
        assert_eq!(send(&mut e, &r), Verdict::Ack(Status::Invalid));
    }

    #[test]
    fn stale_and_window_edges() {
        let mut e = fast_engine();
        assert_eq!(send(&mut e, &repr(1, 1, 2000)), Verdict::Ack(Status::Accepted));
        assert_eq!(send(&mut e, &repr(1, 1, 2000 - 1024)), Verdict::Ack(Status::Stale));
        assert_eq!(send(&mut e, &repr(1, 1, 1)), Verdict::Ack(Status::Stale));
        assert_eq!(send(&mut e, &repr(1, 1, 2000 - 1023)), Verdict::Ack(Status::Accepted));
        assert_eq!(send(&mut e, &repr(1, 1, 2000 - 1023)), Verdict::Ack(Status::Duplicate));
        // stale is judged before rate limiting: it costs no token
        assert_eq!(send(&mut e, &repr(1, 1, u64::MAX)), Verdict::Ack(Status::Accepted));
        assert_eq!(send(&mut e, &repr(1, 1, u64::MAX - 1024)), Verdict::Ack(Status::Stale));
        assert_eq!(send(&mut e, &repr(1, 1, u64::MAX)), Verdict::Ack(Status::Duplicate));
    }

    #[test]
    fn a_restored_window_turns_replays_into_duplicates_and_stale() {
        let keys = Arc::new(Keyring::from_secrets(&[SECRET0]));
        let mut e = Engine::new(fast_cfg(), Arc::clone(&keys), 1);
        let mut w = ReplayWindow::new();
        for s in [7u64, 3000, 2990, 1] {
            w.restore(s); // log order is not seq order; stale ones are ignored
        }
        let r = repr(1, 1, 3000);
        let keyed = keys.keyed_state(&r.to_bytes(&mac_for(&r))).expect("a live record");
        e.restore(PlayerId { game_id: 1, player_id: 1 }, w, &[keyed], 0).unwrap();
        assert_eq!(e.players(), 1);
        assert_eq!(send(&mut e, &repr(1, 1, 3000)), Verdict::Ack(Status::Duplicate));
        assert_eq!(send(&mut e, &repr(1, 1, 2990)), Verdict::Ack(Status::Duplicate));
        assert_eq!(send(&mut e, &repr(1, 1, 7)), Verdict::Ack(Status::Stale));
        assert_eq!(send(&mut e, &repr(1, 1, 2991)), Verdict::Ack(Status::Accepted));
        assert_eq!(send(&mut e, &repr(1, 2, 3000)), Verdict::Ack(Status::Accepted), "other players untouched");
        assert_eq!(
            e.restore(PlayerId { game_id: 1, player_id: 3 }, ReplayWindow::new(), &[], 0),
            Err(RestoreError::NoKeyedState)
        );
    }

    #[test]
    fn a_window_restored_from_key_0_records_judges_key_1_moves() {
        let keys = Arc::new(Keyring::from_secrets(&[SECRET0, SECRET1]));
        let mut e = Engine::new(cfg(), Arc::clone(&keys), 1);
        let mut w = ReplayWindow::new();
        w.restore(2);
        let r = repr(1, 1, 2);
        let keyed = keys.keyed_state(&r.to_bytes(&mac_for(&r))).unwrap();
        assert_eq!(keyed.key_id, 0);
        e.restore(PlayerId { game_id: 1, player_id: 1 }, w, &[keyed], 0).unwrap();
        let mut r = repr(1, 1, 2);
        r.key_id = 1;
        assert_eq!(send(&mut e, &r), Verdict::Ack(Status::Duplicate), "seq 2 accepted under key 0 before the restart");
        r.seq = 3;
        assert_eq!(send(&mut e, &r), Verdict::Ack(Status::Accepted));
        assert_eq!(e.players(), 1);
    }

    #[test]
    fn keyed_state_of_a_logged_move_only_while_its_key_is_live() {
        let r = repr(1, 1, 2);
        let mv = r.to_bytes(&mac_for(&r));
        let k = Keyring::from_secrets(&[SECRET0, SECRET1]).keyed_state(&mv).expect("key 0 live");
        assert_eq!(k.key_id, 0);
        assert_eq!(k.mac.tag(&mv[..48]), mac_for(&r).tag(&mv[..48]));
        assert!(Keyring::from_secrets(&[SECRET1, SECRET0]).keyed_state(&mv).is_none(), "key 0 re-keyed");
        assert!(Keyring::default().keyed_state(&mv).is_none(), "key 0 not configured");
        let mut bad = mv;
        bad[2] = 9;
        assert!(Keyring::from_secrets(&[SECRET0]).keyed_state(&bad).is_none(), "not a move");
        assert!(Keyring::from_secrets(&[SECRET0]).keyed_state(&mv[..63]).is_none());
    }

    #[test]
    fn rate_limit_and_refill() {
        let mut e = engine(); // 10/s, burst 5
        for s in 1..=5 {
            assert_eq!(send_at(&mut e, &repr(1, 1, s), 0, &mut NoDispatch), Verdict::Ack(Status::Accepted));
        }
        assert_eq!(send_at(&mut e, &repr(1, 1, 6), 0, &mut NoDispatch), Verdict::Ack(Status::RateLimited));
        // a rate-limited move is not recorded: the same seq is judged again later
        assert_eq!(send_at(&mut e, &repr(1, 1, 6), SEC / 10, &mut NoDispatch), Verdict::Ack(Status::Accepted));
        assert_eq!(send_at(&mut e, &repr(1, 1, 7), SEC / 10, &mut NoDispatch), Verdict::Ack(Status::RateLimited));
        // duplicates are answered even with an empty bucket
        assert_eq!(send_at(&mut e, &repr(1, 1, 6), SEC / 10, &mut NoDispatch), Verdict::Ack(Status::Duplicate));
        // other players have their own bucket
        assert_eq!(send_at(&mut e, &repr(1, 2, 1), SEC / 10, &mut NoDispatch), Verdict::Ack(Status::Accepted));
        // full refill after a long pause, capped at burst
        for s in 8..13 {
            assert_eq!(send_at(&mut e, &repr(1, 1, s), 100 * SEC, &mut NoDispatch), Verdict::Ack(Status::Accepted));
        }
        assert_eq!(send_at(&mut e, &repr(1, 1, 13), 100 * SEC, &mut NoDispatch), Verdict::Ack(Status::RateLimited));
    }

    struct Room(usize, Vec<[u8; 64]>);
    impl Dispatch for Room {
        fn offer(&mut self, mv: &[u8; 64], _: u64) -> bool {
            if self.0 == 0 {
                return false;
            }
            self.0 -= 1;
            self.1.push(*mv);
            true
        }
    }

    #[test]
    fn busy_when_dispatch_full_records_nothing() {
        let mut e = engine();
        let mut d = Room(1, Vec::new());
        assert_eq!(send_at(&mut e, &repr(1, 1, 1), 0, &mut d), Verdict::Ack(Status::Accepted));
        assert_eq!(send_at(&mut e, &repr(1, 1, 2), 0, &mut d), Verdict::Ack(Status::Busy));
        // BUSY took no token and did not touch the window
        d.0 = 10;
        for s in 2..=5 {
            assert_eq!(send_at(&mut e, &repr(1, 1, s), 0, &mut d), Verdict::Ack(Status::Accepted));
        }
        assert_eq!(d.1.len(), 5);
        let r = repr(1, 1, 1);
        assert_eq!(d.1[0], r.to_bytes(&mac_for(&r)), "the dispatcher gets the signed move bytes");
        // a new player whose first move is BUSY does not take a slot
        d.0 = 0;
        assert_eq!(send_at(&mut e, &repr(9, 9, 1), 0, &mut d), Verdict::Ack(Status::Busy));
        assert_eq!(e.players(), 1);
    }

    #[test]
    fn busy_when_table_full_existing_players_unaffected() {
        let mut e = engine(); // 4 players
        for p in 0..4 {
            assert_eq!(send(&mut e, &repr(1, p, 1)), Verdict::Ack(Status::Accepted));
        }
        assert_eq!(send(&mut e, &repr(1, 99, 1)), Verdict::Ack(Status::Busy));
        assert_eq!(send(&mut e, &repr(1, 99, 1)), Verdict::Ack(Status::Busy));
        // invalid is still judged first for unknown players
        let mut r = repr(1, 99, 1);
        r.kind = 9;
        assert_eq!(send(&mut e, &r), Verdict::Ack(Status::Invalid));
        assert_eq!(send(&mut e, &repr(1, 3, 2)), Verdict::Ack(Status::Accepted));
        assert_eq!(send(&mut e, &repr(1, 3, 2)), Verdict::Ack(Status::Duplicate));
    }

    #[test]
    fn a_seq_accepted_under_one_key_id_is_duplicate_under_another() {
        let mut e = engine();
        let mut r = repr(1, 1, 2);
        assert_eq!(send(&mut e, &r), Verdict::Ack(Status::Accepted));
        // the same player and seq, signed under key 1 (a key rotation)
        r.key_id = 1;
        assert_eq!(send(&mut e, &r), Verdict::Ack(Status::Duplicate), "one window per player, whatever the key_id");
        assert_eq!(send(&mut e, &repr(1, 1, 2 + 2000)), Verdict::Ack(Status::Accepted));
        let mut old = repr(1, 1, 3);
        old.key_id = 1;
        assert_eq!(send(&mut e, &old), Verdict::Ack(Status::Stale), "key 0 moved the window for key 1 too");
        let mut next = repr(1, 1, 2 + 2001);
        next.key_id = 1;
        assert_eq!(send(&mut e, &next), Verdict::Ack(Status::Accepted));
        next.key_id = 0;
        assert_eq!(send(&mut e, &next), Verdict::Ack(Status::Duplicate), "and back");
        assert_eq!(e.players(), 1, "one entry for the player");
        assert_eq!(e.counters.status(Status::Accepted), 3);
    }

    #[test]
    fn one_bucket_per_player_whatever_the_key_id() {
        let mut e = engine(); // burst 5
        for s in 1..=5u64 {
            let mut r = repr(1, 1, s);
            r.key_id = (s % 2) as u8;
            assert_eq!(send(&mut e, &r), Verdict::Ack(Status::Accepted));
        }
        for k in [0u8, 1] {
            let mut r = repr(1, 1, 6);
            r.key_id = k;
            assert_eq!(send(&mut e, &r), Verdict::Ack(Status::RateLimited), "key {k}");
        }
    }

    #[test]
    fn a_third_key_id_is_judged_on_the_same_window_and_forgeries_under_any_key_id_are_dropped() {
        let s2 = [0x33; 32];
        let mut e = Engine::new(
            EngineConfig { bucket: BucketConfig { rate_per_second: 1000, burst: 1000 }, ..cfg() },
            Arc::new(Keyring::from_secrets(&[SECRET0, SECRET1, s2])),
            3,
        );
        let macs = [MasterKey::new(&SECRET0).player_mac(1, 1), MasterKey::new(&SECRET1).player_mac(1, 1), MasterKey::new(&s2).player_mac(1, 1)];
        let run = |e: &mut Engine, k: u8, seq: u64| {
            let mut r = repr(1, 1, seq);
            r.key_id = k;
            let mut b = r.to_bytes(&macs[k as usize]);
            let v = e.process(&mut b, 0, &mut NoDispatch);
            if let Verdict::Ack(_) = v {
                assert!(Ack::new_checked(&b[..ACK_LEN]).unwrap().verify_tag(&macs[k as usize]), "ack signed under key {k}");
            }
            v
        };
        // three key_ids in turn: more than the cached keyed states
        for seq in 1..=30u64 {
            let k = (seq % 3) as u8;
            assert_eq!(run(&mut e, k, seq), Verdict::Ack(Status::Accepted), "seq {seq} key {k}");
            for other in 0..3u8 {
                assert_eq!(run(&mut e, other, seq), Verdict::Ack(Status::Duplicate), "seq {seq} again under key {other}");
            }
        }
        assert_eq!(e.players(), 1);
        // a forgery under a key_id not cached: dropped, nothing changes
        for k in 0..3u8 {
            let mut r = repr(1, 1, 31);
            r.key_id = k;
            let mut b = r.to_bytes(&macs[((k + 1) % 3) as usize]);
            assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Drop(DropReason::BadTag), "key {k}");
        }
        let mut r = repr(1, 1, 31);
        r.key_id = 9;
        let mut b = r.to_bytes(&macs[0]);
        assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Drop(DropReason::UnknownKeyId));
        assert_eq!(run(&mut e, 2, 31), Verdict::Ack(Status::Accepted));
    }

    #[test]
    fn a_player_keeps_its_entry_and_window_while_one_of_its_keys_is_live() {
        let keys01 = Arc::new(Keyring::from_secrets(&[SECRET0, SECRET1]));
        let mut e = Engine::new(cfg(), Arc::clone(&keys01), 1);
        // player 1: moves under key 0, then under key 1 (moved over);
        // player 2: only ever under key 0
        assert_eq!(send(&mut e, &repr(1, 1, 1)), Verdict::Ack(Status::Accepted));
        let mut r = repr(1, 1, 2);
        r.key_id = 1;
        assert_eq!(send(&mut e, &r), Verdict::Ack(Status::Accepted));
        assert_eq!(send(&mut e, &repr(1, 2, 1)), Verdict::Ack(Status::Accepted));
        assert_eq!(e.players(), 2);
        // retire key 0 the documented way: a fresh secret at its index
        let rekeyed = Arc::new(Keyring::from_secrets(&[[0x44; 32], SECRET1]));
        assert_eq!(e.reconfigure(cfg(), rekeyed, 0), 1, "player 2 had no other keyed state: reclaimed");
        assert_eq!(e.players(), 1);
        // player 1's window survived, with the seq accepted under key 0
        let mut r = repr(1, 1, 1);
        r.key_id = 1;
        assert_eq!(send(&mut e, &r), Verdict::Ack(Status::Duplicate));
        // old key 0 no longer verifies, for either player
        for p in [1, 2] {
            let r = repr(1, p, 9);
            let mut b = r.to_bytes(&mac_for(&r));
            assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Drop(DropReason::BadTag), "player {p}");
        }
        // key 1 retired too: nothing is left to hold player 1
        let only0 = Arc::new(Keyring::from_secrets(&[[0x44; 32]]));
        assert_eq!(e.reconfigure(cfg(), only0, 0), 1);
        assert_eq!(e.players(), 0);
        // a reload that changes no key keeps every entry
        let mut e = Engine::new(cfg(), Arc::clone(&keys01), 1);
        assert_eq!(send(&mut e, &repr(1, 1, 1)), Verdict::Ack(Status::Accepted));
        assert_eq!(e.reconfigure(cfg(), Arc::new(Keyring::from_secrets(&[SECRET0, SECRET1])), 0), 0);
        assert_eq!(send(&mut e, &repr(1, 1, 1)), Verdict::Ack(Status::Duplicate));
    }

    #[test]
    fn a_verified_move_under_a_new_key_id_that_is_not_accepted_holds_no_entry() {
        // player 1 accepted under key 0, only retransmits under key 1: the
        // entry's keyed state is key 0's (key 1 has nothing recorded)
        let mut e = engine();
        assert_eq!(send(&mut e, &repr(1, 1, 1)), Verdict::Ack(Status::Accepted));
        let mut r = repr(1, 1, 1);
        r.key_id = 1;
        assert_eq!(send(&mut e, &r), Verdict::Ack(Status::Duplicate));
        let keys = Arc::new(Keyring::from_secrets(&[[0x44; 32], SECRET1]));
        assert_eq!(e.reconfigure(cfg(), keys, 0), 1);
        assert_eq!(e.players(), 0);
    }

    #[test]
    fn reconfigure_keeps_windows_reclaims_retired_key_ids_and_applies_limits() {
        let keys0 = Arc::new(Keyring::from_secrets(&[SECRET0, SECRET1]));
        let mut e = Engine::new(cfg(), Arc::clone(&keys0), 1);
        let p0 = MasterKey::new(&SECRET0).player_mac(1, 1);
        let p1 = MasterKey::new(&SECRET1).player_mac(1, 2);
        let mv = |key_id: u8, player: u32, seq: u64, x: u16| MoveRepr { key_id, kind: 1, game_id: 1, player_id: player, seq, x, ..Default::default() };
        let run = |e: &mut Engine, r: MoveRepr, mac: &PlayerMac| {
            let mut b = r.to_bytes(mac);
            e.process(&mut b, 0, &mut NoDispatch)
        };
        assert_eq!(run(&mut e, mv(0, 1, 1, 0), &p0), Verdict::Ack(Status::Accepted));
        assert_eq!(run(&mut e, mv(1, 2, 1, 0), &p1), Verdict::Ack(Status::Accepted));
        assert_eq!(e.players(), 2);
        // key_id 1 retired, the board widened
        let keys1 = Arc::new(Keyring::from_secrets(&[SECRET0]));
        let wide = EngineConfig { board_width: 100, ..cfg() };
        assert_eq!(e.reconfigure(wide, keys1, 0), 1, "the key_id 1 player is reclaimed");
        assert_eq!(e.players(), 1);
        assert_eq!(run(&mut e, mv(0, 1, 1, 0), &p0), Verdict::Ack(Status::Duplicate), "the window survived");
        assert_eq!(run(&mut e, mv(0, 1, 2, 99), &p0), Verdict::Ack(Status::Accepted), "x = 99 fits the new board");
        assert_eq!(run(&mut e, mv(1, 2, 2, 0), &p1), Verdict::Drop(DropReason::UnknownKeyId));
        // key_id 0 given a new secret: its players are reclaimed too
        let keys2 = Arc::new(Keyring::from_secrets(&[SECRET1]));
        assert_eq!(e.reconfigure(cfg(), keys2, 0), 1);
        assert_eq!(e.players(), 0);
        assert_eq!(run(&mut e, mv(0, 1, 3, 0), &p0), Verdict::Drop(DropReason::BadTag), "old secret no longer verifies");
    }

    fn big(players: usize) -> EngineConfig {
        EngineConfig { players, bucket: BucketConfig { rate_per_second: 1000, burst: 1000 }, ..cfg() }
    }

    /// `n` players of game 1 accepted under `key_id` (secret `secret`).
    fn fill(e: &mut Engine, key_id: u8, secret: &[u8; 32], players: std::ops::Range<u32>) {
        for p in players {
            let r = MoveRepr { key_id, kind: 1, game_id: 1, player_id: p, seq: 1, ..Default::default() };
            let mut b = r.to_bytes(&MasterKey::new(secret).player_mac(1, p));
            assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Ack(Status::Accepted));
        }
    }

    #[test]
    fn a_reload_that_changes_no_key_touches_no_player() {
        let keys = Arc::new(Keyring::from_secrets(&[SECRET0, SECRET1]));
        let mut e = Engine::new(big(20_000), Arc::clone(&keys), 3);
        fill(&mut e, 0, &SECRET0, 0..10_000);
        // rates, burst and board changed; the same secrets (a new Arc)
        let slow = EngineConfig { bucket: BucketConfig { rate_per_second: 1, burst: 1 }, board_width: 20, ..big(20_000) };
        assert!(!e.begin_reconfigure(slow, Arc::new(Keyring::from_secrets(&[SECRET0, SECRET1]))), "no sweep");
        assert_eq!(e.slots_swept(), 0, "no player visited");
        assert_eq!(e.players(), 10_000);
        // the new limits hold at the players' next moves: burst 1
        let r = |seq| MoveRepr { key_id: 0, kind: 1, game_id: 1, player_id: 7, seq, x: 19, ..Default::default() };
        let mac = MasterKey::new(&SECRET0).player_mac(1, 7);
        let mut b = r(2).to_bytes(&mac);
        assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Ack(Status::Accepted), "x = 19 fits the new board");
        let mut b = r(3).to_bytes(&mac);
        assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Ack(Status::RateLimited), "the bucket capped at the new burst");
    }

    #[test]
    fn a_rekeyed_key_id_is_retired_at_once_and_its_players_freed_in_bounded_slices() {
        let keys = Arc::new(Keyring::from_secrets(&[SECRET0, SECRET1]));
        let mut e = Engine::new(big(20_000), keys, 3);
        fill(&mut e, 0, &SECRET0, 0..6_000);
        fill(&mut e, 1, &SECRET1, 6_000..10_000);
        // key_id 0 re-keyed
        const NEW0: [u8; 32] = [0x77; 32];
        assert!(e.begin_reconfigure(big(20_000), Arc::new(Keyring::from_secrets(&[NEW0, SECRET1]))), "a sweep is pending");
        assert!(e.sweeping());
        // before the sweep reaches anyone: the old secret verifies for no one
        let old = MoveRepr { key_id: 0, kind: 1, game_id: 1, player_id: 5, seq: 2, ..Default::default() };
        let mut b = old.to_bytes(&MasterKey::new(&SECRET0).player_mac(1, 5));
        assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Drop(DropReason::BadTag), "a cached keyed state of a re-keyed key_id is never used");
        // a player of the re-keyed key_id starts afresh under the new secret, as if swept
        let mut b = MoveRepr { seq: 1, ..old }.to_bytes(&MasterKey::new(&NEW0).player_mac(1, 5));
        assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Ack(Status::Accepted));
        // the sweep: slices of at most SWEEP_SLOTS slots, every stale entry freed
        let (mut freed, mut steps, mut swept) = (0, 0, e.slots_swept());
        while e.sweeping() {
            freed += e.sweep_step(SWEEP_SLOTS);
            assert!(e.slots_swept() - swept <= SWEEP_SLOTS as u64);
            swept = e.slots_swept();
            steps += 1;
        }
        assert_eq!(freed, 5_999, "the key 0 players but the one that moved under the new secret");
        assert_eq!(steps, e.table.slots().div_ceil(SWEEP_SLOTS));
        assert_eq!(e.players(), 4_001);
        // key 1's players kept their windows; the re-keyed player has its new one
        let mut b = MoveRepr { key_id: 1, kind: 1, game_id: 1, player_id: 6_001, seq: 1, ..Default::default() }.to_bytes(&MasterKey::new(&SECRET1).player_mac(1, 6_001));
        assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Ack(Status::Duplicate));
        let mut b = MoveRepr { seq: 1, ..old }.to_bytes(&MasterKey::new(&NEW0).player_mac(1, 5));
        assert_eq!(e.process(&mut b, 0, &mut NoDispatch), Verdict::Ack(Status::Duplicate));
    }

    #[test]
    fn a_second_key_change_during_a_sweep_restarts_it_and_misses_no_one() {
        let keys = Arc::new(Keyring::from_secrets(&[SECRET0, SECRET1]));
        let mut e = Engine::new(big(20_000), keys, 9);
        fill(&mut e, 0, &SECRET0, 0..3_000);
        fill(&mut e, 1, &SECRET1, 3_000..6_000);
        e.begin_reconfigure(big(20_000), Arc::new(Keyring::from_secrets(&[[0x70; 32], SECRET1])));
        e.sweep_step(SWEEP_SLOTS); // part way
        e.begin_reconfigure(big(20_000), Arc::new(Keyring::from_secrets(&[[0x70; 32], [0x71; 32]])));
        while e.sweeping() {
            e.sweep_step(SWEEP_SLOTS);
        }
        assert_eq!(e.players(), 0, "both key_ids re-keyed: every player freed");
    }
}
