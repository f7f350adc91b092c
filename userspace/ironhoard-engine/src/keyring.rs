//! The master secrets, indexed by key_id (up to 256).

use ironhoard_wire::{MasterKey, Move};

use crate::table::Keyed;

/// Master secrets by key_id, each pre-keyed for player-key derivation.
/// Read-only once built; shared by every worker.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Option<MasterKey>>,
    /// A fingerprint of each secret (not the secret): tells a reload which
    /// key_ids kept their secret and which got a new one.
    prints: Vec<Option<[u8; 16]>>,
}

impl Default for Keyring {
    fn default() -> Self {
        Keyring { keys: vec![None; 256], prints: vec![None; 256] }
    }
}

impl Keyring {
    /// Builds a keyring from raw secrets: `secrets[i]` is key_id `i`.
    ///
    /// # Panics
    /// If more than 256 secrets are given (config validation refuses that).
    pub fn from_secrets(secrets: &[[u8; 32]]) -> Keyring {
        assert!(secrets.len() <= 256, "at most 256 master secrets");
        let mut k = Keyring::default();
        for (i, s) in secrets.iter().enumerate() {
            let m = MasterKey::new(s);
            // the derivation of a fixed, reserved identity: a one-way
            // fingerprint of the secret
            k.prints[i] = Some(m.player_key(u32::MAX, u32::MAX).0[..16].try_into().expect("16 bytes"));
            k.keys[i] = Some(m);
        }
        k
    }

    /// Whether `key_id` has the same secret here and in `other` (both
    /// configured).
    pub fn same_secret(&self, other: &Keyring, key_id: u8) -> bool {
        matches!((&self.prints[key_id as usize], &other.prints[key_id as usize]), (Some(a), Some(b)) if a == b)
    }

    /// The configured key_ids.
    pub fn ids(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=255u8).filter(|&i| self.keys[i as usize].is_some())
    }

    /// The master key for a key_id, if one is configured.
    #[inline]
    pub fn get(&self, key_id: u8) -> Option<&MasterKey> {
        self.keys[key_id as usize].as_ref()
    }

    /// The keyed state a move read back from the move log stands for, if
    /// its key is still live: its key_id configured, and its tag verifying
    /// under that key_id's secret. A record of a retired key_id, or of an
    /// earlier secret of a re-keyed one, cannot be replayed (it fails
    /// verification), so it holds no keyed state. Costs a key derivation
    /// and a tag check: call it once per (player, key_id), not per record.
    pub fn keyed_state(&self, mv: &[u8]) -> Option<Keyed> {
        let m = Move::new_unchecked(mv);
        m.check_header().ok()?;
        let mac = self.get(m.key_id())?.player_mac(m.game_id(), m.player_id());
        m.verify_tag(&mac).then_some(Keyed { key_id: m.key_id(), mac })
    }

    /// Number of configured key_ids.
    pub fn len(&self) -> usize {
        self.keys.iter().filter(|k| k.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
