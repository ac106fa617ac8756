// Command gendoc writes a module's documentation from the JSON Schema of its options and a
// hand-written YAML file with the prose the schema cannot hold: the collection's Python
// documentation module (DOCUMENTATION, EXAMPLES, RETURN, argument spec) and, optionally, the
// sidecar file for the binary in a library directory. Run by `go generate` (`make schema`).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/imagebuilder/imagebuilder/internal/ansible"
)

func main() {
	name := flag.String("name", "", "module name")
	schemaFile := flag.String("schema", "", "JSON Schema of the options")
	proseFile := flag.String("prose", "", "hand-written DOCUMENTATION/EXAMPLES/RETURN (YAML)")
	python := flag.String("python", "", "write the Python documentation module here")
	sidecar := flag.String("sidecar", "", "write the sidecar documentation (NAME.yml) here")
	var more []string
	flag.Func("options", "JSON Schema of options of the module's own, added to -schema's (repeatable)", func(s string) error {
		more = append(more, s)
		return nil
	})
	flag.Parse()
	if err := run(*name, *schemaFile, *proseFile, *python, *sidecar, more); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}

func run(name, schemaFile, proseFile, python, sidecar string, more []string) error {
	if name == "" || schemaFile == "" || proseFile == "" || (python == "" && sidecar == "") {
		return fmt.Errorf("-name, -schema, -prose and -python or -sidecar are needed")
	}
	m, err := ansible.LoadModuleDoc(name, schemaFile, proseFile, more...)
	if err != nil {
		return err
	}
	if python != "" {
		data, err := m.Python()
		if err != nil {
			return err
		}
		if err := os.WriteFile(python, data, 0o644); err != nil {
			return err
		}
	}
	if sidecar != "" {
		data, err := m.Sidecar()
		if err != nil {
			return err
		}
		return os.WriteFile(sidecar, data, 0o644)
	}
	return nil
}
