// Command ephemeral-store is the one binary of the project: the server
// (`serve`, `dev`) and its command-line client (`get`, `put`, `del`, `list`,
// `watch`, `cluster`, `certs`). main only wires; every command lives in
// store/internal/cli.
package main

import (
	"os"

	"github.com/ephemeral-store/ephemeral-store/store/internal/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:]))
}
