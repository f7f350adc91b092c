package ironhoard

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
)

// playerKeyLabel is the domain separation label of the player key derivation.
const playerKeyLabel = "ironhoard/v1/player"

// DefaultKeyCacheSize bounds the number of derived player keys a Keyring
// keeps (about 100 bytes each).
const DefaultKeyCacheSize = 1 << 16

// DerivePlayerKey is a player's key: HMAC-SHA256(master, "ironhoard/v1/player"
// ‖ be32(game) ‖ be32(player)).
func DerivePlayerKey(master []byte, game, player uint32) [32]byte {
	var msg [len(playerKeyLabel) + 8]byte
	copy(msg[:], playerKeyLabel)
	binary.BigEndian.PutUint32(msg[len(playerKeyLabel):], game)
	binary.BigEndian.PutUint32(msg[len(playerKeyLabel)+4:], player)
	mac := hmac.New(sha256.New, master)
	mac.Write(msg[:])
	var k [32]byte
	copy(k[:], mac.Sum(nil))
	return k
}

// MoveTag is the tag a move's first 48 bytes must carry under playerKey:
// the first 16 bytes of HMAC-SHA256(playerKey, move[0:48]).
func MoveTag(playerKey []byte, move []byte) [16]byte {
	mac := hmac.New(sha256.New, playerKey)
	mac.Write(move[:48])
	var t [16]byte
	copy(t[:], mac.Sum(nil))
	return t
}

type playerID struct {
	keyID  uint8
	game   uint32
	player uint32
}

// Keyring holds the master secrets by key_id and verifies moves. Derived
// player keys are cached (at most DefaultKeyCacheSize, or the size given to
// NewKeyringSize). A Keyring is safe for concurrent use.
type Keyring struct {
	mu      sync.Mutex
	masters map[uint8][]byte
	cache   map[playerID][32]byte
	max     int
}

// NewKeyring is an empty Keyring with the default cache bound.
func NewKeyring() *Keyring { return NewKeyringSize(DefaultKeyCacheSize) }

// NewKeyringSize is an empty Keyring that caches at most cacheSize derived
// player keys (0: none).
func NewKeyringSize(cacheSize int) *Keyring {
	if cacheSize < 0 {
		cacheSize = 0
	}
	return &Keyring{masters: map[uint8][]byte{}, cache: map[playerID][32]byte{}, max: cacheSize}
}

// Add sets key_id keyID's master secret (replacing any previous one).
func (k *Keyring) Add(keyID uint8, master []byte) error {
	if len(master) == 0 {
		return fmt.Errorf("ironhoard: master secret of key_id %d is empty", keyID)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.masters[keyID] = append([]byte(nil), master...)
	for id := range k.cache {
		if id.keyID == keyID {
			delete(k.cache, id)
		}
	}
	return nil
}

// AddHex sets key_id keyID's master secret from 64 hex characters
// (surrounding white space is ignored).
func (k *Keyring) AddHex(keyID uint8, s string) error {
	master, err := parseSecretHex(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("ironhoard: master secret of key_id %d: %w", keyID, err)
	}
	return k.Add(keyID, master)
}

// AddFile sets key_id keyID's master secret from a file holding 64 hex
// characters (and a newline), as the appliance's secret files do.
func (k *Keyring) AddFile(keyID uint8, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("ironhoard: master secret of key_id %d: %w", keyID, err)
	}
	master, err := parseSecretHex(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("ironhoard: master secret of key_id %d in %s: %w", keyID, path, err)
	}
	return k.Add(keyID, master)
}

func parseSecretHex(s string) ([]byte, error) {
	if len(s) != 64 {
		return nil, fmt.Errorf("want 64 hex characters, found %d characters", len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not hex: %v", err)
	}
	return b, nil
}

// Has reports whether the keyring holds key_id keyID's master secret.
func (k *Keyring) Has(keyID uint8) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.masters[keyID]
	return ok
}

// PlayerKey is the player key of (keyID, game, player); false if the
// keyring has no master secret for keyID.
func (k *Keyring) PlayerKey(keyID uint8, game, player uint32) ([32]byte, bool) {
	id := playerID{keyID, game, player}
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.cache[id]; ok {
		return key, true
	}
	master, ok := k.masters[keyID]
	if !ok {
		return [32]byte{}, false
	}
	key := DerivePlayerKey(master, game, player)
	if k.max > 0 {
		if len(k.cache) >= k.max {
			for old := range k.cache { // evict one entry, any
				delete(k.cache, old)
				break
			}
		}
		k.cache[id] = key
	}
	return key, true
}

// Verify reports whether m's tag is the one its player's key gives its
// first 48 bytes (compared in constant time). A move whose key_id has no
// master secret in the keyring does not verify.
func (k *Keyring) Verify(m *Move) bool {
	key, ok := k.PlayerKey(m.KeyID, m.GameID, m.PlayerID)
	if !ok {
		return false
	}
	want := MoveTag(key[:], m.Raw[:])
	return hmac.Equal(want[:], m.Raw[48:64])
}

// CheckMove is Verify with the reason a move does not verify: no master
// secret for its key_id, or a tag that does not match.
func (k *Keyring) CheckMove(m *Move) error {
	if !k.Has(m.KeyID) {
		return fmt.Errorf("no master secret for key_id %d", m.KeyID)
	}
	if !k.Verify(m) {
		return fmt.Errorf("tag does not verify (key_id %d, game %d, player %d, seq %d)", m.KeyID, m.GameID, m.PlayerID, m.Seq)
	}
	return nil
}
