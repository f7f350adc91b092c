// Package ironhoard is the Go client a game server uses to consume the moves
// an IronHoard appliance accepted and shipped to NATS JetStream.
//
// Each shipped message carries the 64 move bytes exactly as the player sent
// them (tag included), the appliance's receive time, and where the move sits
// in the appliance's move log (docs/shipping.md). This package
//
//   - parses a message into a [Move] ([ParsePayload], [ParseMessage]);
//   - verifies the move's tag with the master secret of its key_id
//     ([Keyring]), so a game server trusts no one between the player and
//     itself;
//   - routes a game to its stream and subject when the shipper runs with
//     partitions ([Partition], [Subject], [StreamName]);
//   - consumes one game with a durable JetStream pull consumer ([Consumer]):
//     verified moves reach a callback as soon as they arrive, refused ones
//     are terminated and counted, and a move is acked only once the callback
//     accepted it;
//   - measures each move's journey from the appliance to the callback
//     ([Histogram], [Metrics]) and exposes it as JSON or Prometheus text.
package ironhoard
