package ironhoard

import (
	"hash/fnv"
	"strconv"
)

// Partition is the partition of game among n: FNV-1a 32-bit of the game id
// in ASCII decimal, mod n, as NATS's {{partition(n,1)}} subject mapping
// computes it. n <= 1 is one partition: 0.
func Partition(game uint32, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write(strconv.AppendUint(nil, uint64(game), 10))
	return int(h.Sum32() % uint32(n))
}

// Subject is the subject the moves of game are published on by a shipper
// with the given subject prefix and n partitions: "<prefix>.<game>" for
// n <= 1, "<prefix>.<partition>.<game>" otherwise.
func Subject(prefix string, game uint32, n int) string {
	g := strconv.FormatUint(uint64(game), 10)
	if n <= 1 {
		return prefix + "." + g
	}
	return prefix + "." + strconv.Itoa(Partition(game, n)) + "." + g
}

// StreamName is the stream holding the moves of game, given the stream's
// base name and n partitions: stream for n <= 1, "<stream>_<partition>"
// otherwise.
func StreamName(stream string, game uint32, n int) string {
	if n <= 1 {
		return stream
	}
	return stream + "_" + strconv.Itoa(Partition(game, n))
}
