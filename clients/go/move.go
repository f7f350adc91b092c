package ironhoard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Sizes and constants of a shipped message (docs/shipping.md, docs/protocol.md).
const (
	// MoveLen is the length of a move as the player sent it, tag included.
	MoveLen = 64
	// PayloadLen is the length of a shipped message's payload: the move,
	// the receive time (u64), the log queue (u16) and the log offset (u64).
	PayloadLen = 82
	// Version is the only move version this package understands.
	Version = 1

	// HeaderHost names the edge host that shipped the move.
	HeaderHost = "Ironhoard-Host"
	// HeaderQueue is the move log partition the move was recorded in.
	HeaderQueue = "Ironhoard-Queue"
	// HeaderOffset is the move's offset in that partition.
	HeaderOffset = "Ironhoard-Offset"
	// HeaderMsgID is the JetStream deduplication id, "ih1.<game>.<player>.<seq>".
	HeaderMsgID = nats.MsgIdHdr
)

// Magic is the first two bytes of every move.
var Magic = [2]byte{'I', 'H'}

// Move kinds (byte 4 of a move).
const (
	KindStep  = 1
	KindDig   = 2
	KindClaim = 3
)

// ErrMalformed is wrapped by every error of ParsePayload and ParseMessage.
var ErrMalformed = errors.New("ironhoard: malformed move message")

// Move is one shipped move: every field of the move as the player sent it,
// and what the appliance added when it recorded and shipped it.
type Move struct {
	// Raw is the 64 move bytes exactly as received; the tag covers Raw[:48].
	Raw [MoveLen]byte

	KeyID    uint8  // master secret the player's key derives from
	Kind     uint8  // KindStep, KindDig, KindClaim
	Flags    uint8  // move flags
	GameID   uint32 // game the move belongs to
	PlayerID uint32 // player who sent it
	Seq      uint64 // the player's sequence number, only grows
	ClientTS uint64 // the client's timestamp, opaque to the appliance
	X, Y     uint16 // board coordinates
	Payload  [12]byte
	Tag      [16]byte

	// RecvUnixNs is when the appliance received the move (its wall clock,
	// Unix nanoseconds).
	RecvUnixNs uint64
	// Queue and Offset locate the move in the shipping host's move log.
	Queue  uint16
	Offset uint64

	// Host is the Ironhoard-Host header: the edge host that shipped it.
	Host string
	// MsgID is the Nats-Msg-Id header ("ih1.<game>.<player>.<seq>"), or
	// empty if the message had none.
	MsgID string

	// StreamSeq and Delivered are the JetStream stream sequence and
	// delivery count; Consumer fills them in, parsing leaves them zero.
	StreamSeq uint64
	Delivered uint64
	// OutOfOrder is set by Consumer when Seq is not greater than the last
	// seq applied for this player (a retry, a duplicate, or a redelivery
	// that was overtaken).
	OutOfOrder bool
}

// RecvTime is RecvUnixNs as a time.Time.
func (m *Move) RecvTime() time.Time {
	return time.Unix(0, int64(m.RecvUnixNs))
}

// IdentityMsgID is the message id the shipper gives this move,
// "ih1.<game>.<player>.<seq>", computed from the move itself.
func (m *Move) IdentityMsgID() string {
	return MsgID(m.GameID, m.PlayerID, m.Seq)
}

// MsgID is the Nats-Msg-Id of the move (game, player, seq): its identity,
// whatever its key_id.
func MsgID(game, player uint32, seq uint64) string {
	return fmt.Sprintf("ih1.%d.%d.%d", game, player, seq)
}

// ParsePayload decodes an 82-byte shipped payload. It checks the length,
// the magic and the version; it does not verify the tag (see Keyring.Verify).
func ParsePayload(data []byte) (Move, error) {
	var m Move
	if len(data) != PayloadLen {
		return m, fmt.Errorf("%w: payload is %d bytes, want %d", ErrMalformed, len(data), PayloadLen)
	}
	if data[0] != Magic[0] || data[1] != Magic[1] {
		return m, fmt.Errorf("%w: magic is %#x, want %#x (\"IH\")", ErrMalformed, data[0:2], Magic[:])
	}
	if data[2] != Version {
		return m, fmt.Errorf("%w: version is %d, want %d", ErrMalformed, data[2], Version)
	}
	copy(m.Raw[:], data[:MoveLen])
	be := binary.BigEndian
	m.KeyID = data[3]
	m.Kind = data[4]
	m.Flags = data[5]
	m.GameID = be.Uint32(data[8:12])
	m.PlayerID = be.Uint32(data[12:16])
	m.Seq = be.Uint64(data[16:24])
	m.ClientTS = be.Uint64(data[24:32])
	m.X = be.Uint16(data[32:34])
	m.Y = be.Uint16(data[34:36])
	copy(m.Payload[:], data[36:48])
	copy(m.Tag[:], data[48:64])
	m.RecvUnixNs = be.Uint64(data[64:72])
	m.Queue = be.Uint16(data[72:74])
	m.Offset = be.Uint64(data[74:82])
	return m, nil
}

// ParseMessage decodes a shipped message: its payload (ParsePayload) and
// the headers Ironhoard-Host and Nats-Msg-Id. hdr may be nil.
func ParseMessage(data []byte, hdr nats.Header) (Move, error) {
	m, err := ParsePayload(data)
	if err != nil {
		return m, err
	}
	if hdr != nil {
		m.Host = hdr.Get(HeaderHost)
		m.MsgID = hdr.Get(HeaderMsgID)
	}
	return m, nil
}
