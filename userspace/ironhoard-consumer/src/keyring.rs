//! Master secrets by key_id, and a bounded cache of derived player MACs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use ironhoard_wire::{MasterKey, PlayerMac};

use crate::Error;

/// Default number of player MACs kept (about 200 bytes each).
pub const DEFAULT_CACHE: usize = 65_536;

/// The master secrets a consumer verifies with, by key_id.
///
/// Deriving a player key costs four SHA-256 compressions; the keyring keeps
/// up to `cache_cap` derived [`PlayerMac`]s (cleared whole when full, so it
/// stays bounded whatever the traffic).
pub struct Keyring {
    masters: HashMap<u8, MasterKey>,
    cache: Mutex<HashMap<(u8, u32, u32), PlayerMac>>,
    cache_cap: usize,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<u8> = self.masters.keys().copied().collect();
        ids.sort_unstable();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

impl Default for Keyring {
    fn default() -> Self {
        Keyring::new()
    }
}

impl Keyring {
    /// An empty keyring (every move refused until a secret is added).
    pub fn new() -> Keyring {
        Keyring::with_cache(DEFAULT_CACHE)
    }

    /// An empty keyring keeping up to `cap` derived player MACs (0: none).
    pub fn with_cache(cap: usize) -> Keyring {
        Keyring { masters: HashMap::new(), cache: Mutex::new(HashMap::new()), cache_cap: cap }
    }

    /// Adds (or replaces) key_id's master secret.
    pub fn insert(&mut self, key_id: u8, secret: &[u8; 32]) {
        self.masters.insert(key_id, MasterKey::new(secret));
        self.cache.get_mut().unwrap_or_else(|e| e.into_inner()).retain(|k, _| k.0 != key_id);
    }

    /// Adds key_id's master secret from a file of 64 hex characters
    /// (surrounding whitespace, such as a final newline, ignored).
    pub fn insert_file(&mut self, key_id: u8, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|cause| Error::SecretRead { path: path.into(), cause })?;
        let secret = parse_hex_secret(&text).map_err(|why| Error::SecretFormat { path: path.into(), why })?;
        self.insert(key_id, &secret);
        Ok(())
    }

    /// Whether key_id has a master secret here.
    pub fn contains(&self, key_id: u8) -> bool {
        self.masters.contains_key(&key_id)
    }

    /// The player MAC of (key_id, game, player); `None` for an unknown key_id.
    pub fn player_mac(&self, key_id: u8, game_id: u32, player_id: u32) -> Option<PlayerMac> {
        let master = self.masters.get(&key_id)?;
        if self.cache_cap == 0 {
            return Some(master.player_mac(game_id, player_id));
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mac) = cache.get(&(key_id, game_id, player_id)) {
            return Some(mac.clone());
        }
        let mac = master.player_mac(game_id, player_id);
        if cache.len() >= self.cache_cap {
            cache.clear();
        }
        cache.insert((key_id, game_id, player_id), mac.clone());
        Some(mac)
    }

    /// Number of cached player MACs.
    pub fn cached(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// 32 bytes from 64 hex characters, surrounding whitespace ignored.
fn parse_hex_secret(text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    if t.len() != 64 {
        return Err(format!("expected 64 hex characters, found {}", t.len()));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(t, &mut out).map_err(|e| format!("not hex: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_secrets() {
        let s = "00".repeat(31) + "ff";
        assert_eq!(parse_hex_secret(&format!("{s}\n")).unwrap()[31], 0xff);
        assert_eq!(parse_hex_secret(&format!("  {s}  ")).unwrap()[0], 0);
        assert!(parse_hex_secret(&s[..62]).unwrap_err().contains("62"));
        assert!(parse_hex_secret(&("zz".to_string() + &s[2..])).unwrap_err().contains("not hex"));
    }

    #[test]
    fn files_name_the_file_at_fault() {
        let dir = std::env::temp_dir().join(format!("ih-keyring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.hex");
        std::fs::write(&good, format!("{}\n", "ab".repeat(32))).unwrap();
        let bad = dir.join("bad.hex");
        std::fs::write(&bad, "abc\n").unwrap();
        let mut k = Keyring::new();
        k.insert_file(3, &good).unwrap();
        assert!(k.contains(3) && !k.contains(0));
        let e = k.insert_file(4, &bad).unwrap_err().to_string();
        assert!(e.contains("bad.hex") && e.contains("64 hex"), "{e}");
        let e = k.insert_file(5, dir.join("missing.hex")).unwrap_err().to_string();
        assert!(e.contains("missing.hex"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn derives_what_the_wire_crate_derives_and_stays_bounded() {
        let mut k = Keyring::with_cache(2);
        k.insert(1, &[5; 32]);
        assert!(k.player_mac(2, 1, 1).is_none(), "unknown key_id");
        let want = MasterKey::new(&[5; 32]).player_mac(7, 9).tag(b"hello");
        assert_eq!(k.player_mac(1, 7, 9).unwrap().tag(b"hello"), want);
        assert_eq!(k.player_mac(1, 7, 9).unwrap().tag(b"hello"), want, "from the cache");
        for p in 0..10 {
            k.player_mac(1, 7, p).unwrap();
            assert!(k.cached() <= 2);
        }
        // replacing a secret drops its cached keys
        k.insert(1, &[6; 32]);
        assert_ne!(k.player_mac(1, 7, 9).unwrap().tag(b"hello"), want);
    }
}
