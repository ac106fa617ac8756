package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/ansibletest"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestRemoteCache runs image_build (check mode) over the real sshd on loopback, as a remote host:
// the first run copies the module binary into the host's cache (its directory 0700, the file
// named by its SHA-256), the second runs the cached copy without copying (same inode, same
// mtime), a corrupted cached binary is detected by its hash and replaced, async runs the cached
// copy too, two plays racing on an empty cache both succeed and leave one verified binary, and
// the options (a unique label value) never appear in the -vvv output.
func TestRemoteCache(t *testing.T) {
	env := testenv.Require(t, ansibleBinEnv, testenv.SSHHost, testenv.SSHPort, testenv.SSHUser, testenv.SSHKey, testenv.SSHKnownHosts,
		testenv.BuildKit, testenv.Registry, testenv.Base)
	colls := ansibletest.Collection(t)
	local := filepath.Join(colls, "ansible_collections", "imagebuilder", "images", "binaries", "linux_amd64", "image_build")
	want := fileSHA256(t, local)

	dir := t.TempDir()
	inventory := filepath.Join(dir, "inventory.ini")
	if err := os.WriteFile(inventory, []byte(fmt.Sprintf(
		"remote ansible_connection=ssh ansible_host=%s ansible_port=%s ansible_user=%s ansible_ssh_private_key_file=%s "+
			"ansible_ssh_common_args='-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes' ansible_python_interpreter=/usr/bin/python3\n",
		env[testenv.SSHHost], env[testenv.SSHPort], env[testenv.SSHUser], env[testenv.SSHKey], env[testenv.SSHKnownHosts])), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + env[testenv.Base] + "\nRUN echo remote > /r\n"})
	label := "canary-" + testenv.UniqueTag("label")
	remoteTmp := filepath.Join(dir, "remote-tmp")

	play := func(t *testing.T, cache string, extraEnv []string, extra ...string) (playRun, map[string]any) {
		t.Helper()
		d := t.TempDir()
		resultFile := filepath.Join(d, "result.json")
		vars, _ := json.Marshal(map[string]any{
			"source": map[string]any{"git_repo": map[string]any{"url": "file://" + repo, "version": "main"}},
			"target": map[string]any{
				"images":   []any{map[string]any{"image": "ansible/remote", "tag": "cache", "labels": map[string]any{"canary": label}}},
				"registry": map[string]any{"url": env[testenv.Registry]},
			},
			"builder":                   map[string]any{"endpoint": env[testenv.BuildKit]},
			"result_file":               resultFile,
			"build_hosts":               "remote",
			"imagebuilder_module_cache": cache,
		})
		varsFile := filepath.Join(d, "vars.json")
		if err := os.WriteFile(varsFile, vars, 0o600); err != nil {
			t.Fatal(err)
		}
		r := runAnsible(t, ansibleEnv(t, append([]string{"ANSIBLE_REMOTE_TEMP=" + remoteTmp}, extraEnv...)...), "ansible-playbook",
			append([]string{"-i", inventory, "tests/fqcn.yml", "-e", "@" + varsFile, "--check", "-vvv"}, extra...)...)
		var res map[string]any
		if data, err := os.ReadFile(resultFile); err == nil {
			if err := json.Unmarshal(data, &res); err != nil {
				t.Fatal(err)
			}
		}
		if r.Code != 0 || res == nil || res["dry_run"] != true || res["failed"] == true {
			t.Fatalf("exit %d, result %v\n%s", r.Code, res, r.Out)
		}
		if !strings.Contains(r.Out, "ESTABLISH SSH CONNECTION") {
			t.Fatalf("the play did not go through ssh:\n%s", r.Out)
		}
		if strings.Contains(r.Out, label) {
			t.Errorf("the options (label %s) appear in the -vvv output", label)
		}
		return r, res
	}
	const copying = "into the cache on the host"

	cache := filepath.Join(dir, "cache")
	cached := filepath.Join(cache, want, "image_build")
	var first os.FileInfo
	t.Run("first run copies the binary", func(t *testing.T) {
		r, _ := play(t, cache, nil)
		if strings.Count(r.Out, copying) != 1 {
			t.Errorf("the binary was not copied exactly once:\n%s", r.Out)
		}
		if got := fileSHA256(t, cached); got != want {
			t.Fatalf("cached binary has sha256 %s, want %s", got, want)
		}
		entries, err := os.ReadDir(filepath.Join(cache, want))
		if err != nil || len(entries) != 1 {
			t.Errorf("cache directory holds %v (%v), want only image_build", entries, err)
		}
		for _, d := range []string{cache, filepath.Join(cache, want)} {
			if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("%s: mode %v (%v), want 0700", d, fi.Mode().Perm(), err)
			}
		}
		first = stat(t, cached)
	})

	t.Run("second run uses the cache", func(t *testing.T) {
		r, _ := play(t, cache, nil)
		if strings.Contains(r.Out, copying) || !strings.Contains(r.Out, "ran the cached copy "+cached) {
			t.Errorf("the second run copied the binary again or did not run the cached copy:\n%s", r.Out)
		}
		if fi := stat(t, cached); !os.SameFile(fi, first) || !fi.ModTime().Equal(first.ModTime()) {
			t.Errorf("the cached binary was replaced (inode or mtime changed)")
		}
	})

	t.Run("become", func(t *testing.T) {
		// The machine check, the cache and the module run through the become method, the
		// options on its standard input.
		// (root to root: ansible-core skips become between the same users unless told not to.)
		r, _ := play(t, cache, []string{"ANSIBLE_BECOME_ALLOW_SAME_USER=1"},
			"-e", "ansible_become=true", "-e", "ansible_become_method=sudo", "-e", "ansible_become_user=root")
		if !strings.Contains(r.Out, "sudo -H -S -n") || !strings.Contains(r.Out, "ran the cached copy "+cached) || strings.Contains(r.Out, copying) {
			t.Errorf("become: the cached binary did not run through sudo:\n%s", r.Out)
		}
	})

	t.Run("async runs the cached copy", func(t *testing.T) {
		r, res := play(t, cache, nil, "-e", "async_seconds=120")
		if fin := fmt.Sprint(res["finished"]); strings.Contains(r.Out, copying) || (fin != "true" && fin != "1") ||
			res["changed"] != true || res["warnings"] != nil && len(res["warnings"].([]any)) != 0 {
			t.Errorf("async: result %v\n%s", res, r.Out)
		}
		if fi := stat(t, cached); !os.SameFile(fi, first) {
			t.Error("async replaced the cached binary")
		}
		// async_wrapper's watcher removes the task's temporary directory (options file, link to
		// the cached binary) when it next wakes up, up to 5 s after the job ended.
		var left []string
		for range 100 {
			if left, _ = filepath.Glob(filepath.Join(remoteTmp, "ansible-tmp-*")); len(left) == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(left) != 0 {
			t.Errorf("temporary directories left on the host: %v", left)
		}
	})

	t.Run("corrupted binary is replaced", func(t *testing.T) {
		f, err := os.OpenFile(cached, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("corrupt"), 4096); err != nil {
			t.Fatal(err)
		}
		f.Close()
		r, _ := play(t, cache, nil)
		if strings.Count(r.Out, copying) != 1 {
			t.Errorf("the corrupted binary was not replaced:\n%s", r.Out)
		}
		if got := fileSHA256(t, cached); got != want {
			t.Errorf("cached binary has sha256 %s after the repair, want %s", got, want)
		}
	})

	t.Run("two plays race on an empty cache", func(t *testing.T) {
		race := filepath.Join(dir, "race")
		t.Run("plays", func(t *testing.T) {
			for i := range 2 {
				t.Run(fmt.Sprint(i), func(t *testing.T) {
					t.Parallel()
					play(t, race, nil)
				})
			}
		})
		if got := fileSHA256(t, filepath.Join(race, want, "image_build")); got != want {
			t.Errorf("after the race the cached binary has sha256 %s, want %s", got, want)
		}
		if entries, _ := os.ReadDir(filepath.Join(race, want)); len(entries) != 1 {
			t.Errorf("after the race the cache holds %d entries, want 1 (no temporary files)", len(entries))
		}
	})
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func stat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fi.Sys().(*syscall.Stat_t); !ok {
		t.Fatalf("%s: no inode", path)
	}
	return fi
}
