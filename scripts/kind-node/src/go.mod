// Sources built into kind node component images by scripts/node-image.sh,
// which copies each main.go into its own wrapper module. This go.mod only
// keeps them out of the ephemeral-store module (and its go.sum).
module ephemeral-store/kind-node-src

go 1.24
