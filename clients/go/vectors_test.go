package ironhoard

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

type shippedVectors struct {
	PayloadLen    int    `json:"payload_len"`
	SubjectPrefix string `json:"subject_prefix"`
	Stream        string `json:"stream"`
	Cases         []struct {
		Name            string `json:"name"`
		MasterSecretHex string `json:"master_secret_hex"`
		PayloadHex      string `json:"payload_hex"`
		Move            struct {
			KeyID      uint8  `json:"key_id"`
			Kind       uint8  `json:"kind"`
			Flags      uint8  `json:"flags"`
			GameID     uint32 `json:"game_id"`
			PlayerID   uint32 `json:"player_id"`
			Seq        uint64 `json:"seq"`
			ClientTS   uint64 `json:"client_ts"`
			X          uint16 `json:"x"`
			Y          uint16 `json:"y"`
			PayloadHex string `json:"payload_hex"`
			TagHex     string `json:"tag_hex"`
		} `json:"move"`
		RecvUnixNs uint64 `json:"recv_unix_ns"`
		Queue      uint16 `json:"queue"`
		Offset     uint64 `json:"offset"`
		MsgID      string `json:"msg_id"`
		Verifies   bool   `json:"verifies"`
		Routes     []struct {
			Partitions int    `json:"partitions"`
			Subject    string `json:"subject"`
			Stream     string `json:"stream"`
		} `json:"routes"`
	} `json:"cases"`
	Forged []struct {
		Name            string `json:"name"`
		MasterSecretHex string `json:"master_secret_hex"`
		PayloadHex      string `json:"payload_hex"`
	} `json:"forged"`
	Malformed []struct {
		Name       string `json:"name"`
		PayloadHex string `json:"payload_hex"`
	} `json:"malformed"`
	Partitions []struct {
		GameID    uint32 `json:"game_id"`
		N         int    `json:"n"`
		Partition int    `json:"partition"`
	} `json:"partitions"`
}

type wireVectors struct {
	Cases []struct {
		Name            string `json:"name"`
		MasterSecretHex string `json:"master_secret_hex"`
		KeyID           uint8  `json:"key_id"`
		GameID          uint32 `json:"game_id"`
		PlayerID        uint32 `json:"player_id"`
		PlayerKeyHex    string `json:"player_key_hex"`
		MoveHex         string `json:"move_hex"`
	} `json:"cases"`
}

func loadJSON(t *testing.T, path string, v interface{}) {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatalf("test vectors: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("test vectors %s: %v", path, err)
	}
}

func loadShipped(t *testing.T) *shippedVectors {
	var v shippedVectors
	loadJSON(t, "../testdata/shipped-v1.json", &v)
	if len(v.Cases) == 0 || len(v.Forged) == 0 || len(v.Malformed) == 0 || len(v.Partitions) == 0 {
		t.Fatalf("shipped-v1.json: a section is empty: %d cases, %d forged, %d malformed, %d partitions",
			len(v.Cases), len(v.Forged), len(v.Malformed), len(v.Partitions))
	}
	return &v
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestShippedCases(t *testing.T) {
	v := loadShipped(t)
	if v.PayloadLen != PayloadLen {
		t.Fatalf("payload_len %d, PayloadLen %d", v.PayloadLen, PayloadLen)
	}
	for _, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			payload := unhex(t, c.PayloadHex)
			hdr := map[string][]string{HeaderHost: {"edge-1"}, HeaderMsgID: {c.MsgID}}
			m, err := ParseMessage(payload, hdr)
			if err != nil {
				t.Fatalf("ParseMessage: %v", err)
			}
			want := c.Move
			got := struct {
				KeyID, Kind, Flags uint8
				GameID, PlayerID   uint32
				Seq, ClientTS      uint64
				X, Y               uint16
			}{m.KeyID, m.Kind, m.Flags, m.GameID, m.PlayerID, m.Seq, m.ClientTS, m.X, m.Y}
			exp := struct {
				KeyID, Kind, Flags uint8
				GameID, PlayerID   uint32
				Seq, ClientTS      uint64
				X, Y               uint16
			}{want.KeyID, want.Kind, want.Flags, want.GameID, want.PlayerID, want.Seq, want.ClientTS, want.X, want.Y}
			if got != exp {
				t.Errorf("fields %+v, want %+v", got, exp)
			}
			if !bytes.Equal(m.Payload[:], unhex(t, want.PayloadHex)) {
				t.Errorf("payload %x, want %s", m.Payload, want.PayloadHex)
			}
			if !bytes.Equal(m.Tag[:], unhex(t, want.TagHex)) {
				t.Errorf("tag %x, want %s", m.Tag, want.TagHex)
			}
			if !bytes.Equal(m.Raw[:], payload[:64]) {
				t.Errorf("raw %x, want %x", m.Raw, payload[:64])
			}
			if m.RecvUnixNs != c.RecvUnixNs || m.Queue != c.Queue || m.Offset != c.Offset {
				t.Errorf("recv %d queue %d offset %d, want %d %d %d", m.RecvUnixNs, m.Queue, m.Offset, c.RecvUnixNs, c.Queue, c.Offset)
			}
			if m.RecvTime().UnixNano() != int64(c.RecvUnixNs) {
				t.Errorf("RecvTime %v, want %d ns", m.RecvTime(), c.RecvUnixNs)
			}
			if m.Host != "edge-1" || m.MsgID != c.MsgID {
				t.Errorf("host %q msg id %q, want edge-1 %q", m.Host, m.MsgID, c.MsgID)
			}
			if id := m.IdentityMsgID(); id != c.MsgID {
				t.Errorf("IdentityMsgID %q, want %q", id, c.MsgID)
			}

			kr := NewKeyring()
			if err := kr.AddHex(m.KeyID, c.MasterSecretHex); err != nil {
				t.Fatal(err)
			}
			if got := kr.Verify(&m); got != c.Verifies {
				t.Errorf("Verify %v, want %v", got, c.Verifies)
			}
			if err := kr.CheckMove(&m); (err == nil) != c.Verifies {
				t.Errorf("CheckMove %v, want verifies=%v", err, c.Verifies)
			}
			// under another key_id's secret (none), it does not verify
			other := NewKeyring()
			if err := other.AddHex(m.KeyID+1, c.MasterSecretHex); err != nil {
				t.Fatal(err)
			}
			if other.Verify(&m) {
				t.Errorf("verifies with no master secret for key_id %d", m.KeyID)
			}

			if len(c.Routes) == 0 {
				t.Fatal("no routes")
			}
			for _, r := range c.Routes {
				if s := Subject(v.SubjectPrefix, m.GameID, r.Partitions); s != r.Subject {
					t.Errorf("Subject(%q, %d, %d) = %q, want %q", v.SubjectPrefix, m.GameID, r.Partitions, s, r.Subject)
				}
				if s := StreamName(v.Stream, m.GameID, r.Partitions); s != r.Stream {
					t.Errorf("StreamName(%q, %d, %d) = %q, want %q", v.Stream, m.GameID, r.Partitions, s, r.Stream)
				}
			}
		})
	}
}

func TestShippedForgedDoNotVerify(t *testing.T) {
	v := loadShipped(t)
	for _, c := range v.Forged {
		t.Run(c.Name, func(t *testing.T) {
			m, err := ParsePayload(unhex(t, c.PayloadHex))
			if err != nil {
				t.Fatalf("a forged payload should parse: %v", err)
			}
			kr := NewKeyring()
			if err := kr.AddHex(m.KeyID, c.MasterSecretHex); err != nil {
				t.Fatal(err)
			}
			if kr.Verify(&m) {
				t.Error("a forged move verifies")
			}
			if err := kr.CheckMove(&m); err == nil {
				t.Error("CheckMove: no error for a forged move")
			}
		})
	}
}

func TestShippedMalformedDoNotParse(t *testing.T) {
	v := loadShipped(t)
	for _, c := range v.Malformed {
		t.Run(c.Name, func(t *testing.T) {
			_, err := ParsePayload(unhex(t, c.PayloadHex))
			if err == nil {
				t.Fatal("a malformed payload parses")
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
		})
	}
}

func TestParseErrorsNameTheFault(t *testing.T) {
	v := loadShipped(t)
	good := unhex(t, v.Cases[0].PayloadHex)
	badVersion := append([]byte(nil), good...)
	badVersion[2] = 2
	badMagic := append([]byte(nil), good...)
	badMagic[1] = 'X'
	for _, c := range []struct {
		name, data, want string
	}{
		{"short", string(good[:81]), "81 bytes, want 82"},
		{"magic", string(badMagic), "magic"},
		{"version", string(badVersion), "version is 2, want 1"},
	} {
		_, err := ParseMessage([]byte(c.data), nil)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
}

func TestPartitionTable(t *testing.T) {
	v := loadShipped(t)
	for _, p := range v.Partitions {
		if got := Partition(p.GameID, p.N); got != p.Partition {
			t.Errorf("Partition(%d, %d) = %d, want %d", p.GameID, p.N, got, p.Partition)
		}
	}
}

func TestWireVectorsPlayerKeysAndTags(t *testing.T) {
	var v wireVectors
	loadJSON(t, "../../userspace/ironhoard-wire/testdata/vectors-v1.json", &v)
	if len(v.Cases) == 0 {
		t.Fatal("vectors-v1.json: no cases")
	}
	for _, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			master := unhex(t, c.MasterSecretHex)
			key := DerivePlayerKey(master, c.GameID, c.PlayerID)
			if hex.EncodeToString(key[:]) != c.PlayerKeyHex {
				t.Errorf("player key %x, want %s", key, c.PlayerKeyHex)
			}
			kr := NewKeyringSize(1)
			if err := kr.Add(c.KeyID, master); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ { // derived, then cached
				if k, ok := kr.PlayerKey(c.KeyID, c.GameID, c.PlayerID); !ok || k != key {
					t.Errorf("Keyring.PlayerKey (%d) = %x %v, want %x", i, k, ok, key)
				}
			}
			// the move with an empty trailer: every vector move is well signed
			payload := append(unhex(t, c.MoveHex), make([]byte, PayloadLen-MoveLen)...)
			m, err := ParsePayload(payload)
			if err != nil {
				t.Fatal(err)
			}
			if m.KeyID != c.KeyID || m.GameID != c.GameID || m.PlayerID != c.PlayerID {
				t.Errorf("key_id %d game %d player %d, want %d %d %d", m.KeyID, m.GameID, m.PlayerID, c.KeyID, c.GameID, c.PlayerID)
			}
			if !kr.Verify(&m) {
				t.Error("vector move does not verify")
			}
			tag := MoveTag(key[:], m.Raw[:])
			if !bytes.Equal(tag[:], m.Tag[:]) {
				t.Errorf("MoveTag %x, want %x", tag, m.Tag)
			}
		})
	}
}

func TestKeyringFileAndCacheBound(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "secret0.hex")
	secret := "e1ad5f49d72c75ed02feae0a4051df6ba2a43ff422ff4df34c27c9b02fc4a24f"
	if err := os.WriteFile(good, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.hex")
	if err := os.WriteFile(short, []byte("abcd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kr := NewKeyringSize(4)
	if err := kr.AddFile(0, good); err != nil {
		t.Fatal(err)
	}
	if err := kr.AddFile(1, short); err == nil || !bytes.Contains([]byte(err.Error()), []byte(short)) {
		t.Errorf("a 4-character secret file: error %v, want one naming %s", err, short)
	}
	if err := kr.AddFile(1, filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing secret file: no error")
	}
	if kr.Has(1) || !kr.Has(0) {
		t.Error("Has: wrong key ids")
	}
	for p := uint32(0); p < 100; p++ {
		k, ok := kr.PlayerKey(0, 1, p)
		if !ok || k != DerivePlayerKey(unhex(t, secret), 1, p) {
			t.Fatalf("player %d: wrong key", p)
		}
	}
	if n := len(kr.cache); n > 4 {
		t.Errorf("cache holds %d keys, bound 4", n)
	}
	// replacing a master secret drops its cached keys
	other := "b338bd9aeee18a375d8c12f28afd2915a4cff5647521498ac87432e2d7f2c71b"
	if err := kr.AddHex(0, other); err != nil {
		t.Fatal(err)
	}
	if k, _ := kr.PlayerKey(0, 1, 99); k != DerivePlayerKey(unhex(t, other), 1, 99) {
		t.Error("a cached key outlived its master secret")
	}
}
