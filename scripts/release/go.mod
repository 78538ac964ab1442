// The release tooling of scripts/release.sh: a module of its own, so that what it needs to write
// an OCI image layout (go-containerregistry) stays out of the store's go.mod.
module github.com/ephemeral-store/ephemeral-store/scripts/release

go 1.26.0

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/klauspost/compress v1.20.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	golang.org/x/sync v0.22.0 // indirect
)
