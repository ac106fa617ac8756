package main

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/ansibletest"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestCollection installs the collection built with scripts/build-collection.sh (ansible-galaxy
// collection build) into a temporary path with ansible-galaxy collection install, and runs a
// play that names the module by its FQCN: ansible-doc renders it, a build pushes the digest the
// registry serves, and the action plugin picks the linux/arm64 binary on an aarch64 host (a
// `uname` that says so; the binary runs under qemu-user) and refuses other machines.
func TestCollection(t *testing.T) {
	env := testenv.Require(t, ansibleBinEnv, testenv.BuildKit, testenv.Registry, testenv.Base)
	bin := env[ansibleBinEnv]
	tarball := ansibletest.Tarball(t)
	collections := t.TempDir()
	install := exec.Command(filepath.Join(bin, "ansible-galaxy"), "collection", "install", "-p", collections, tarball)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("ansible-galaxy collection install: %v\n%s", err, out)
	}
	installed := filepath.Join(collections, "ansible_collections", "imagebuilder", "images")
	for path, machine := range map[string]elf.Machine{
		"binaries/linux_amd64/image_build":    elf.EM_X86_64,
		"binaries/linux_arm64/image_build":    elf.EM_AARCH64,
		"binaries/linux_amd64/image_family":   elf.EM_X86_64,
		"binaries/linux_arm64/image_family":   elf.EM_AARCH64,
		"binaries/linux_amd64/image_promote":  elf.EM_X86_64,
		"binaries/linux_arm64/image_promote":  elf.EM_AARCH64,
		"binaries/linux_amd64/image_manifest": elf.EM_X86_64,
		"binaries/linux_arm64/image_manifest": elf.EM_AARCH64,
	} {
		f, err := elf.Open(filepath.Join(installed, path))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if f.Machine != machine {
			t.Errorf("%s is for %v, want %v", path, f.Machine, machine)
		}
		f.Close()
	}
	for _, path := range []string{"LICENSE", "CHANGELOG.md", "plugins/modules/image_build.py", "plugins/action/image_build.py",
		"plugins/modules/image_family.py", "plugins/action/image_family.py", "plugins/modules/image_promote.py", "plugins/action/image_promote.py",
		"plugins/modules/image_manifest.py", "plugins/action/image_manifest.py", "plugins/plugin_utils/binary_module.py", "binaries/SHA256SUMS"} {
		if _, err := os.Stat(filepath.Join(installed, path)); err != nil {
			t.Errorf("the installed collection lacks %s: %v", path, err)
		}
	}
	var modules []string
	entries, _ := os.ReadDir(filepath.Join(installed, "plugins", "modules"))
	for _, e := range entries {
		modules = append(modules, e.Name())
	}
	if want := []string{"image_build.py", "image_family.py", "image_manifest.py", "image_promote.py"}; !slices.Equal(modules, want) {
		t.Errorf("plugins/modules holds %v, want only %v (binaries are no public module names)", modules, want)
	}

	collEnv := func(t *testing.T, extra ...string) []string {
		return append(ansibleEnv(t, extra...), "ANSIBLE_COLLECTIONS_PATH="+collections)
	}
	usingInstalled := func(t *testing.T, out, platform string) {
		t.Helper()
		if !strings.Contains(out, "Using module file "+filepath.Join(installed, "binaries", platform, "image_build")+"\n") {
			t.Errorf("the %s binary of the installed collection did not run:\n%s", platform, out)
		}
	}

	t.Run("ansible-doc", func(t *testing.T) {
		r := runAnsible(t, collEnv(t), "ansible-doc", "imagebuilder.images.image_build")
		if r.Code != 0 || !strings.Contains(r.Out, "MODULE imagebuilder.images.image_build") || !strings.Contains(r.Out, "OPTIONS") {
			t.Fatalf("exit %d\n%s", r.Code, r.Out)
		}
		if strings.Contains(r.Out, "WARNING") {
			t.Errorf("ansible-doc complains:\n%s", r.Out)
		}
	})

	repo := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + env[testenv.Base] + "\nRUN echo collection > /c\n"})
	play := func(t *testing.T, extraEnv []string, tag string, args ...string) (playRun, map[string]any) {
		t.Helper()
		dir := t.TempDir()
		resultFile := filepath.Join(dir, "result.json")
		vars, _ := json.Marshal(map[string]any{
			"source":      map[string]any{"git_repo": map[string]any{"url": "file://" + repo, "version": "main"}},
			"target":      map[string]any{"images": []any{map[string]any{"image": "ansible/collection", "tag": tag}}, "registry": map[string]any{"url": env[testenv.Registry]}},
			"builder":     map[string]any{"endpoint": env[testenv.BuildKit]},
			"result_file": resultFile,
		})
		varsFile := filepath.Join(dir, "vars.json")
		if err := os.WriteFile(varsFile, vars, 0o600); err != nil {
			t.Fatal(err)
		}
		r := runAnsible(t, collEnv(t, extraEnv...), "ansible-playbook", append([]string{"tests/fqcn.yml", "-e", "@" + varsFile, "-vvv"}, args...)...)
		var res map[string]any
		if data, err := os.ReadFile(resultFile); err == nil {
			if err := json.Unmarshal(data, &res); err != nil {
				t.Fatal(err)
			}
		}
		return r, res
	}

	t.Run("build by FQCN", func(t *testing.T) {
		tag := testenv.UniqueTag("fqcn")
		r, res := play(t, nil, tag)
		if r.Code != 0 || res == nil {
			t.Fatalf("exit %d\n%s", r.Code, r.Out)
		}
		usingInstalled(t, r.Out, "linux_amd64")
		ref := env[testenv.Registry] + "/ansible/collection:" + tag
		digests, _ := res["digests"].(map[string]any)
		if got := testenv.RegistryDigest(t, ref, testenv.Basic("", "")); got == "" || digests[ref] != got || res["changed"] != true {
			t.Errorf("registered digest %v, registry serves %q\n%v", digests[ref], got, res)
		}
	})

	fakeUname := func(t *testing.T, output string) []string {
		dir := t.TempDir()
		script := fmt.Sprintf("#!/bin/sh\necho %q\n", output)
		if err := os.WriteFile(filepath.Join(dir, "uname"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		return []string{"PATH=" + dir + string(os.PathListSeparator) + bin + string(os.PathListSeparator) + os.Getenv("PATH")}
	}

	t.Run("arm64 host", func(t *testing.T) {
		testenv.RequireFile(t, "/proc/sys/fs/binfmt_misc/qemu-aarch64", "the qemu-aarch64 binfmt registration")
		r, res := play(t, fakeUname(t, "Linux aarch64"), testenv.UniqueTag("arm64"), "--check")
		if r.Code != 0 || res == nil {
			t.Fatalf("exit %d\n%s", r.Code, r.Out)
		}
		usingInstalled(t, r.Out, "linux_arm64")
		if res["dry_run"] != true || res["changed"] != true {
			t.Errorf("result: %v", res)
		}
	})

	t.Run("unsupported host", func(t *testing.T) {
		r, _ := play(t, fakeUname(t, "Linux riscv64"), testenv.UniqueTag("riscv"), "--check")
		if r.Code == 0 || !strings.Contains(r.Out, "image_build runs on Linux hosts (x86_64 or aarch64); this host is Linux riscv64") {
			t.Errorf("exit %d\n%s", r.Code, r.Out)
		}
	})
}
