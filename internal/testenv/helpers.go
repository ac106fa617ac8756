package testenv

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// GitRepo creates a git repository in a temporary directory with the given files (paths may
// have directories) committed on branch main, and returns the directory.
func GitRepo(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	WriteFiles(t, dir, files)
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "-A"},
		{"-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-q", "-m", "test"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

// WriteFiles writes files (paths relative to dir, which may have directories) under dir.
func WriteFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// GitRepoURL is GitRepo as a file:// URL.
func GitRepoURL(t testing.TB, files map[string]string) string {
	t.Helper()
	return "file://" + GitRepo(t, files)
}

// Basic is basic authentication, or anonymous access when user is empty.
func Basic(user, pass string) authn.Authenticator {
	if user == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: user, Password: pass}
}

// RegistryDigest is what the registry serves for ref, or "" when ref does not exist. A nil auth
// is anonymous.
func RegistryDigest(t testing.TB, ref string, auth authn.Authenticator) string {
	t.Helper()
	if auth == nil {
		auth = authn.Anonymous
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r, remote.WithAuth(auth))
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return ""
	}
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return d.Digest.String()
}

// FileInImage reads a file from the image at ref for platform ("" for a single-platform image),
// with opts (authentication, say); it fails the test when the file is not there.
func FileInImage(t testing.TB, ref, platform, path string, opts ...remote.Option) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if platform != "" {
		p, err := v1.ParsePlatform(platform)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, remote.WithPlatform(*p))
	}
	img, err := remote.Image(r, opts...)
	if err != nil {
		t.Fatalf("reading image %s (%s): %v", ref, platform, err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	want := strings.TrimPrefix(path, "/")
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s not in %s (%s)", path, ref, platform)
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "./") == want {
			data, _ := io.ReadAll(tr)
			return string(data)
		}
	}
}

// UniqueTag is a tag no other test run uses.
func UniqueTag(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}

// SyncBuffer is a bytes.Buffer that several goroutines may write to.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// PushDated pushes a small random linux/amd64 image whose config says it was created at created
// (zero: no created) with labels, under ref, and returns its digest. Sweep tests date tags with
// it. opts are added to the push's (authentication).
func PushDated(t testing.TB, ref string, created time.Time, labels map[string]string, opts ...remote.Option) string {
	t.Helper()
	return pushRandom(t, ref, v1.Platform{OS: "linux", Architecture: "amd64"}, created, labels, opts...)
}

// PushPlatform pushes a small random image of platform (linux/arm64) under ref and returns its
// digest.
func PushPlatform(t testing.TB, ref, platform string, opts ...remote.Option) string {
	t.Helper()
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		t.Fatal(err)
	}
	return pushRandom(t, ref, *p, time.Time{}, nil, opts...)
}

func pushRandom(t testing.TB, ref string, p v1.Platform, created time.Time, labels map[string]string, opts ...remote.Option) string {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: created}
	cf.Config.Labels = labels
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return Push(t, ref, img, opts...)
}

// Push writes img to ref (test setup, outside the code under test) and returns its digest.
func Push(t testing.TB, ref string, img v1.Image, opts ...remote.Option) string {
	t.Helper()
	return write(t, ref, img, func(r name.Reference) error { return remote.Write(r, img, opts...) })
}

// PushIndex writes idx to ref (test setup) and returns its digest.
func PushIndex(t testing.TB, ref string, idx v1.ImageIndex, opts ...remote.Option) string {
	t.Helper()
	return write(t, ref, idx, func(r name.Reference) error { return remote.WriteIndex(r, idx, opts...) })
}

func write(t testing.TB, ref string, d interface{ Digest() (v1.Hash, error) }, put func(name.Reference) error) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := put(r); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}
