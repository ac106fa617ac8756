// Command genschema writes the build-params JSON Schema generated from the Go types in
// internal/params. Run it through `go generate ./...` or `make schema`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/imagebuilder/imagebuilder/internal/params"
)

func main() {
	out := flag.String("o", "", "output file (default: stdout)")
	src := flag.String("src", ".", "directory of the internal/params sources")
	readme := flag.String("readme", "", "also regenerate the params reference in this README")
	flag.Parse()
	if err := generate(*src, *out, *readme); err != nil {
		fmt.Fprintln(os.Stderr, "genschema:", err)
		os.Exit(1)
	}
}

func generate(src, out, readme string) error {
	data, err := params.GenerateSchema(src)
	if err != nil {
		return err
	}
	if out == "" {
		_, err = os.Stdout.Write(data)
	} else {
		err = os.WriteFile(out, data, 0o644)
	}
	if err != nil || readme == "" {
		return err
	}
	ref, err := params.Reference(data)
	if err != nil {
		return err
	}
	doc, err := os.ReadFile(readme)
	if err != nil {
		return err
	}
	updated, err := params.ReplaceReference(string(doc), ref)
	if err != nil {
		return fmt.Errorf("%s: %w", readme, err)
	}
	return os.WriteFile(readme, []byte(updated), 0o644)
}
