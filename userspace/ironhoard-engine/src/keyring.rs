//! The master secrets, indexed by key_id (up to 256).

use ironhoard_wire::MasterKey;

/// Master secrets by key_id, each pre-keyed for player-key derivation.
/// Read-only once built; shared by every worker.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Option<MasterKey>>,
}

impl Default for Keyring {
    fn default() -> Self {
        Keyring { keys: vec![None; 256] }
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
            k.keys[i] = Some(MasterKey::new(s));
        }
        k
    }

    /// The master key for a key_id, if one is configured.
    #[inline]
    pub fn get(&self, key_id: u8) -> Option<&MasterKey> {
        self.keys[key_id as usize].as_ref()
    }

    /// Number of configured key_ids.
    pub fn len(&self) -> usize {
        self.keys.iter().filter(|k| k.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
