package buildah

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
)

// binfmtDir is where the kernel lists the registered binfmt_misc interpreters.
const binfmtDir = "/proc/sys/fs/binfmt_misc"

// qemuPlatforms maps the names Debian's qemu-user-static registers in binfmt_misc to the
// platforms whose binaries they run.
var qemuPlatforms = map[string][]string{
	"qemu-aarch64":     {"linux/arm64"},
	"qemu-arm":         {"linux/arm/v7", "linux/arm/v6"},
	"qemu-x86_64":      {"linux/amd64"},
	"qemu-i386":        {"linux/386"},
	"qemu-ppc64le":     {"linux/ppc64le"},
	"qemu-s390x":       {"linux/s390x"},
	"qemu-riscv64":     {"linux/riscv64"},
	"qemu-mips64el":    {"linux/mips64le"},
	"qemu-mips64":      {"linux/mips64"},
	"qemu-loongarch64": {"linux/loong64"},
}

// nativeExtras are the platforms a native platform runs without emulation.
var nativeExtras = map[string][]string{
	"linux/amd64": {"linux/386"},
	"linux/arm64": {"linux/arm/v7", "linux/arm/v6"},
}

// runnablePlatforms returns the native platform, the platforms it runs natively, and those
// whose qemu interpreter is registered and enabled in binfmt_misc under dir, without repeats.
func runnablePlatforms(native, dir string) []string {
	out := []string{native}
	add := func(ps ...string) {
		for _, p := range ps {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	add(nativeExtras[native]...)
	if status, err := os.ReadFile(filepath.Join(dir, "status")); err != nil || !bytes.HasPrefix(status, []byte("enabled")) {
		return out
	}
	names := make([]string, 0, len(qemuPlatforms))
	for n := range qemuPlatforms {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err == nil && bytes.HasPrefix(data, []byte("enabled")) {
			add(qemuPlatforms[n]...)
		}
	}
	return out
}
