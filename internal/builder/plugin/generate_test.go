package plugin

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestGeneratedCode regenerates the contract's Go code as `make generate` does and fails when
// the committed files differ from it.
func TestGeneratedCode(t *testing.T) {
	testenv.RequireProgram(t, "protoc", "protoc (Debian package protobuf-compiler)")
	out := t.TempDir()
	cmd := exec.Command("../../../scripts/generate-proto.sh", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/generate-proto.sh: %v\n%s", err, b)
	}
	for _, f := range []string{"builder.pb.go", "builder_grpc.pb.go"} {
		want, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("pluginpb", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("pluginpb/%s is not what builder.proto generates: run make generate", f)
		}
	}
}
