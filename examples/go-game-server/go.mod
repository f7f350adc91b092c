module github.com/ironhoard/ironhoard/examples/go-game-server

go 1.19

require (
	github.com/ironhoard/ironhoard/clients/go v0.0.0
	github.com/nats-io/nats.go v1.22.1
)

// Copied out of the repository: drop this and require a released version
// (or point it at your checkout), then run go mod tidy.
replace github.com/ironhoard/ironhoard/clients/go => ../../clients/go
