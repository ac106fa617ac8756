// Command genschema writes the family-file JSON Schema generated from the Go types in
// internal/family. Run it through `go generate ./...` or `make schema`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/imagebuilder/imagebuilder/internal/family"
)

func main() {
	out := flag.String("o", "", "output file (default: stdout)")
	src := flag.String("src", ".", "directory of the internal/family sources")
	flag.Parse()
	data, err := family.GenerateSchema(*src)
	if err == nil {
		if *out == "" {
			_, err = os.Stdout.Write(data)
		} else {
			err = os.WriteFile(*out, data, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genschema:", err)
		os.Exit(1)
	}
}
