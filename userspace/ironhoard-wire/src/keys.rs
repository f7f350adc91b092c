//! Key derivation and tags (SPEC §1 "Keys").
//!
//! `player_key = HMAC-SHA256(master[key_id], "ironhoard/v1/player" || be32(game) || be32(player))`,
//! tag = first 16 bytes of `HMAC-SHA256(player_key, signed bytes)`.

use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

/// SHA-256's initial hash value (FIPS 180-4, 5.3.3).
const H0: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// HMAC-SHA256 (RFC 2104) with the key's inner and outer states computed
/// once: a MAC of up to 55 bytes is then exactly two SHA-256 compressions
/// on the stack (the inner block, the outer block), with no hasher to clone
/// or buffer to manage — what the per-packet path runs twice per move.
#[derive(Clone, Copy)]
struct HmacState {
    inner: [u32; 8],
    outer: [u32; 8],
}

fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::compress256(state, core::slice::from_ref(GenericArray::from_slice(block)));
}

impl HmacState {
    fn new(key: &[u8]) -> HmacState {
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let (mut ib, mut ob) = ([0u8; 64], [0u8; 64]);
        for i in 0..64 {
            ib[i] = k[i] ^ 0x36;
            ob[i] = k[i] ^ 0x5c;
        }
        let (mut inner, mut outer) = (H0, H0);
        compress(&mut inner, &ib);
        compress(&mut outer, &ob);
        HmacState { inner, outer }
    }

    /// SHA-256 finishing from `state`, `prefix` bytes (one block: the key
    /// pad) already compressed.
    fn finish(mut state: [u32; 8], data: &[u8]) -> [u8; 32] {
        let mut chunks = data.chunks_exact(64);
        for c in &mut chunks {
            compress(&mut state, c.try_into().expect("64-byte chunk"));
        }
        let rest = chunks.remainder();
        let bits = ((64 + data.len()) as u64) * 8;
        let mut block = [0u8; 64];
        block[..rest.len()].copy_from_slice(rest);
        block[rest.len()] = 0x80;
        if rest.len() > 55 {
            compress(&mut state, &block);
            block = [0u8; 64];
        }
        block[56..].copy_from_slice(&bits.to_be_bytes());
        compress(&mut state, &block);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    fn mac(&self, data: &[u8]) -> [u8; 32] {
        let inner = HmacState::finish(self.inner, data);
        HmacState::finish(self.outer, &inner)
    }
}

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
    mac: HmacState,
}

impl core::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Keys the HMAC state with a 32-byte master secret.
    pub fn new(secret: &[u8; 32]) -> MasterKey {
        MasterKey { mac: HmacState::new(secret) }
    }

    /// Derives the player key for (game_id, player_id).
    pub fn player_key(&self, game_id: u32, player_id: u32) -> PlayerKey {
        let mut msg = [0u8; 27];
        msg[..19].copy_from_slice(PLAYER_KEY_LABEL);
        msg[19..23].copy_from_slice(&game_id.to_be_bytes());
        msg[23..].copy_from_slice(&player_id.to_be_bytes());
        PlayerKey(self.mac.mac(&msg))
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
    mac: HmacState,
}

impl core::fmt::Debug for PlayerMac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PlayerMac(..)")
    }
}

impl PlayerMac {
    pub fn new(key: &PlayerKey) -> PlayerMac {
        PlayerMac { mac: HmacState::new(&key.0) }
    }

    /// The truncated tag of `data`.
    pub fn tag(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let full = self.mac.mac(data);
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
        let full = self.mac.mac(data);
        // constant time: every byte compared, no early exit
        let diff = full[..TAG_LEN].iter().zip(tag).fold(0u8, |d, (a, b)| d | (a ^ b));
        core::hint::black_box(diff) == 0
    }
}

#[cfg(test)]
mod hmac_tests {
    use super::*;
    use hmac::{Hmac, Mac};

    fn reference(key: &[u8], data: &[u8]) -> [u8; 32] {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().into()
    }

    #[test]
    fn equals_the_hmac_crate_for_every_length_around_the_block_edges() {
        let data: [u8; 200] = core::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a);
        for key_len in [0usize, 1, 32, 63, 64, 65, 100] {
            let key: [u8; 100] = core::array::from_fn(|i| (i as u8).wrapping_mul(11) ^ 0xa5);
            let st = HmacState::new(&key[..key_len]);
            for n in 0..200 {
                assert_eq!(st.mac(&data[..n]), reference(&key[..key_len], &data[..n]), "key {key_len} data {n}");
            }
        }
    }

    #[test]
    fn rfc4231_case_2() {
        let st = HmacState::new(b"Jefe");
        let want = hex_literal(b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_eq!(st.mac(b"what do ya want for nothing?"), want);
    }

    fn hex_literal(h: &[u8; 64]) -> [u8; 32] {
        let v = |c: u8| if c.is_ascii_digit() { c - b'0' } else { c - b'a' + 10 };
        core::array::from_fn(|i| v(h[2 * i]) << 4 | v(h[2 * i + 1]))
    }

    #[test]
    fn a_wrong_tag_fails_verification_at_any_byte() {
        let m = MasterKey::new(&[7; 32]).player_mac(1, 2);
        let data = [9u8; 48];
        let t = m.tag(&data);
        assert!(m.verify(&data, &t));
        for i in 0..TAG_LEN {
            let mut bad = t;
            bad[i] ^= 0x80;
            assert!(!m.verify(&data, &bad), "byte {i}");
        }
        assert!(!m.verify(&data, &t[..15]));
    }
}
