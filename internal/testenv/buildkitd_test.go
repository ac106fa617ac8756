package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRootUnder(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bk := "/tmp/ib-bk-123"
	container := write("container", "146 88 0:66 / / rw,relatime - overlay overlay rw,lowerdir="+bk+"/root/snapshots/3/fs,upperdir="+bk+"/root/snapshots/360/fs,workdir="+bk+"/root/snapshots/360/work\n147 146 0:69 / /proc rw - proc proc rw\n")
	host := write("host", "22 1 254:1 / / rw,relatime - ext4 /dev/vda rw\n300 22 0:66 / "+bk+"/root/executor/x/rootfs rw - overlay overlay rw,lowerdir="+bk+"/root/snapshots/3/fs,upperdir="+bk+"/root/snapshots/360/fs,workdir="+bk+"/root/snapshots/360/work\n")
	other := write("other", "146 88 0:66 / / rw - overlay overlay rw,lowerdir=/var/lib/imagebuilder/buildkit/snapshots/3/fs,workdir=/var/lib/imagebuilder/buildkit/snapshots/3/work\n")
	if !rootUnder(container, bk) {
		t.Error("a container of the private buildkitd is not recognised")
	}
	if rootUnder(host, bk) {
		t.Error("a host process that merely sees the container's mount would be killed")
	}
	if rootUnder(other, bk) {
		t.Error("a container of another buildkitd would be killed")
	}
	if rootUnder(filepath.Join(dir, "missing"), bk) {
		t.Error("an unreadable mount table matched")
	}
}
