// Command tiercel is the broker and its tools; see `tiercel --help`.
package main

import (
	"os"

	"github.com/tiercel/tiercel/internal/cli"
)

func main() { os.Exit(cli.Execute()) }
