// Command genopenapi writes the build service's OpenAPI document (internal/api) to
// schema/openapi.json. Run it through `go generate ./...` or `make schema`; its go:generate line
// is in package schema, which `go generate ./...` reaches after internal/params and
// internal/family regenerate the schemas the document embeds.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/imagebuilder/imagebuilder/internal/api"
)

func main() {
	out := flag.String("o", "", "output file (default: stdout)")
	flag.Parse()
	doc, err := api.Document()
	if err == nil {
		if *out == "" {
			_, err = os.Stdout.Write(doc)
		} else {
			err = os.WriteFile(*out, doc, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genopenapi:", err)
		os.Exit(1)
	}
}
