//! Key derivation and tags (SPEC §1 "Keys").
//!
//! `player_key = HMAC-SHA256(master[key_id], "ironhoard/v1/player" || be32(game) || be32(player))`,
//! tag = first 16 bytes of `HMAC-SHA256(player_key, signed bytes)`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length of a move or ack tag: HMAC-SHA256 truncated to 16 bytes.
pub const TAG_LEN: usize = 16;
/// Label prefixed to the ids when deriving a player key (19 bytes).
pub const PLAYER_KEY_LABEL: &[u8; 19] = b"ironhoard/v1/player";

/// A player's 32-byte key, as handed to the client by the login service.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PlayerKey(pub [u8; 32]);

impl core::fmt::Debug for PlayerKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PlayerKey(..)")
    }
}

/// A master secret with its HMAC state pre-keyed, ready to derive player keys.
#[derive(Clone)]
pub struct MasterKey {
    mac: HmacSha256,
}

impl core::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Keys the HMAC state with a 32-byte master secret.
    pub fn new(secret: &[u8; 32]) -> MasterKey {
        MasterKey { mac: HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length") }
    }

    /// Derives the player key for (game_id, player_id).
    pub fn player_key(&self, game_id: u32, player_id: u32) -> PlayerKey {
        let mut mac = self.mac.clone();
        mac.update(PLAYER_KEY_LABEL);
        mac.update(&game_id.to_be_bytes());
        mac.update(&player_id.to_be_bytes());
        PlayerKey(mac.finalize().into_bytes().into())
    }

    /// Derives the player key and keys a [`PlayerMac`] with it.
    pub fn player_mac(&self, game_id: u32, player_id: u32) -> PlayerMac {
        PlayerMac::new(&self.player_key(game_id, player_id))
    }
}

/// A player's HMAC state, keyed once: each tag then costs two SHA-256
/// compressions (inner block and outer block) for inputs up to 55 bytes.
#[derive(Clone)]
pub struct PlayerMac {
    mac: HmacSha256,
}

impl core::fmt::Debug for PlayerMac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PlayerMac(..)")
    }
}

impl PlayerMac {
    pub fn new(key: &PlayerKey) -> PlayerMac {
        PlayerMac { mac: HmacSha256::new_from_slice(&key.0).expect("HMAC accepts any key length") }
    }

    /// The truncated tag of `data`.
    pub fn tag(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(data);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&full[..TAG_LEN]);
        out
    }

    /// Constant-time comparison of `tag` with the truncated tag of `data`.
    /// A tag of any length other than 16 bytes is refused.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        if tag.len() != TAG_LEN {
            return false;
        }
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.verify_truncated_left(tag).is_ok()
    }
}
