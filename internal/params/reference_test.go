package params

import (
	"os"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/schema"
)

// TestReadmeReference fails when README.md's params reference differs from the schema.
func TestReadmeReference(t *testing.T) {
	ref, err := Reference(schema.BuildParams)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"`source.git_repo.url`", "`target.images[].platforms`", "`target.registry.password`", "`builder.endpoint`"} {
		if !strings.Contains(ref, field) {
			t.Errorf("reference lacks %s", field)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReplaceReference(string(readme), ref)
	if err != nil {
		t.Fatal(err)
	}
	if want != string(readme) {
		t.Fatal("README.md's params reference is out of date: run `make schema` and commit the result")
	}
}
