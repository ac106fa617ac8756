package registry_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagebuilder/imagebuilder/internal/registry"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// memRegistry returns go-containerregistry's in-memory registry, quiet.
func memRegistry() http.Handler {
	return ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
}

// serve starts h on a loopback httptest server and returns its host:port.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// noKeychain is a keychain without credentials, so tests do not depend on the machine's
// Docker config.
var noKeychain = registry.WithKeychain(authn.NewMultiKeychain())

func newClient(t *testing.T, opts ...registry.Option) *registry.Client {
	t.Helper()
	c, err := registry.New(opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// image is a random image for platform p ("linux/arm64/v8"), with OCI media types when oci.
func image(t *testing.T, p string, oci bool) v1.Image {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	if p != "" {
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			t.Fatal(err)
		}
		cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	if oci {
		img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	}
	return img
}

// push writes img to ref (test setup, outside the client under test) and returns its
// digest.
func push(t *testing.T, ref string, img v1.Image, opts ...remote.Option) string {
	t.Helper()
	return testenv.Push(t, ref, img, opts...)
}

// dockerConfig points DOCKER_CONFIG (and HOME, so ~/.docker is not read) at a temporary
// directory whose config.json holds auths, keyed by server as in Docker's config.
func dockerConfig(t *testing.T, auths map[string]authn.AuthConfig) {
	t.Helper()
	dir := t.TempDir()
	entries := map[string]map[string]string{}
	for server, a := range auths {
		e := map[string]string{}
		if a.Username != "" || a.Password != "" {
			e["auth"] = b64(a.Username + ":" + a.Password)
		}
		if a.IdentityToken != "" {
			e["identitytoken"] = a.IdentityToken
		}
		entries[server] = e
	}
	b, err := json.Marshal(map[string]any{"auths": entries})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("XDG_CONFIG_HOME", "")
}

// distributionLike makes h behave like Docker Distribution 2.x on DELETE (verified against
// distribution 2.8.2): with deletes disabled every DELETE is 405 UNSUPPORTED; otherwise a tag
// cannot be deleted (400 DIGEST_INVALID), and deleting a manifest by digest removes the tags
// pointing at it.
func distributionLike(h http.Handler, deletes bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := strings.LastIndex(r.URL.Path, "/manifests/")
		if r.Method != http.MethodDelete || !strings.HasPrefix(r.URL.Path, "/v2/") || i < 0 {
			h.ServeHTTP(w, r)
			return
		}
		if !deletes {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			io.WriteString(w, `{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}`)
			return
		}
		repo, ref := r.URL.Path[len("/v2/"):i], r.URL.Path[i+len("/manifests/"):]
		if !strings.HasPrefix(ref, "sha256:") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"}]}`)
			return
		}
		var tags []string
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/"+repo+"/tags/list", nil))
		var list struct{ Tags []string }
		_ = json.Unmarshal(rec.Body.Bytes(), &list)
		for _, tag := range list.Tags {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/v2/"+repo+"/manifests/"+tag, nil))
			if rec.Header().Get("Docker-Content-Digest") == ref {
				tags = append(tags, tag)
			}
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code == http.StatusAccepted {
			for _, tag := range tags {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodDelete, "/v2/"+repo+"/manifests/"+tag, nil))
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
