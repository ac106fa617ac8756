package family

import (
	"path/filepath"
	"reflect"

	"github.com/imagebuilder/imagebuilder/internal/params"
)

// SchemaID is the $id of the family-file schema.
const SchemaID = "https://github.com/imagebuilder/imagebuilder/schema/family.schema.json"

// GenerateSchema reflects the family-file schema from the Go types. srcDir is the directory of
// this package's sources (internal/params is its sibling), from which field comments become
// descriptions.
func GenerateSchema(srcDir string) ([]byte, error) {
	return params.Reflect(params.ReflectOptions{
		Root:  reflect.TypeOf(File{}),
		ID:    SchemaID,
		Title: "imagebuilder family file",
		Description: "A family of images built from one or more sources, FROM each other, " +
			"in dependency order: sources, images (or images_dir), registry, tags, builder.",
		Comments: map[string]string{
			"github.com/imagebuilder/imagebuilder/internal/family": srcDir,
			"github.com/imagebuilder/imagebuilder/internal/params": filepath.Join(srcDir, "..", "params"),
		},
	})
}
