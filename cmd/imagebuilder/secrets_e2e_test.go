package main

// End-to-end tests of what imagebuilder must never let out: passwords, tokens and the
// credentials URLs carry, in the output of every command and the module, and in anything
// pushed to the registry. Canaries are unique per run.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh/agent"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// canary is a secret no other run uses.
func canary(t *testing.T, kind string) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return kind + "-canary-" + hex.EncodeToString(b)
}

// noCanary fails when any canary appears in any of the texts.
func noCanary(t *testing.T, what string, canaries []string, texts ...string) {
	t.Helper()
	for _, c := range canaries {
		for _, text := range texts {
			if strings.Contains(text, c) {
				t.Errorf("%s: secret %q leaked:\n%s", what, c[:strings.Index(c, "-canary")], excerpt(text, c))
			}
		}
	}
}

func excerpt(text, c string) string {
	i := strings.Index(text, c)
	return text[max(0, i-200):min(len(text), i+len(c)+100)]
}

// pushedMetadata reads back everything the registry holds about ref besides the layers: the
// manifests (annotations), indexes, and every image config (labels, history, env).
func pushedMetadata(t *testing.T, ref string, auth authn.Authenticator) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r, remote.WithAuth(auth))
	if err != nil {
		t.Fatalf("reading %s: %v", ref, err)
	}
	var out strings.Builder
	out.Write(desc.Manifest)
	var imgs []v1.Image
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range im.Manifests {
			img, err := idx.Image(m.Digest)
			if err != nil {
				t.Fatal(err)
			}
			imgs = append(imgs, img)
		}
	} else {
		img, err := desc.Image()
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	for _, img := range imgs {
		m, err := img.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.RawConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		out.Write(m)
		out.Write(cfg)
	}
	return out.String()
}

// secretServer serves a Dockerfile and a context tarball, both only to a client that knows the
// password and sends the query tokens, and records what it was asked.
type secretServer struct {
	*httptest.Server
	user, pass, token, signature string
}

func newSecretServer(t *testing.T, dockerfile string) *secretServer {
	s := &secretServer{user: "ci", pass: canary(t, "userinfo"), token: canary(t, "token"), signature: canary(t, "amzsig")}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != s.user || p != s.pass || r.URL.Query().Get("token") != s.token || r.URL.Query().Get("X-Amz-Signature") != s.signature {
			http.Error(w, "denied", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/Dockerfile":
			fmt.Fprint(w, dockerfile)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// url is the server's URL for path with the credentials in userinfo and query.
func (s *secretServer) url(path string) string {
	return fmt.Sprintf("http://%s:%s@%s%s?token=%s&X-Amz-Signature=%s&X-Amz-Expires=300",
		s.user, s.pass, strings.TrimPrefix(s.URL, "http://"), path, s.token, s.signature)
}

// TestNoSecretAnywhere feeds credential-bearing URLs and passwords through validate, build
// (success and failure), dry run and the Ansible module, and checks stdout, stderr, the module's
// facts and log, and every label, annotation and history entry pushed.
func TestNoSecretAnywhere(t *testing.T) {
	env := testenv.Require(t, testenv.AuthRegistry, testenv.AuthUser, testenv.AuthPassword, testenv.AuthBase, testenv.BuildKit)
	reg, user, pass := env[testenv.AuthRegistry], env[testenv.AuthUser], env[testenv.AuthPassword]
	buildSecret := canary(t, "buildsecret")
	srv := newSecretServer(t, fmt.Sprintf(`FROM %s
RUN --mount=type=secret,id=tok echo "the token is $(cat /run/secrets/tok)" && cat /run/secrets/tok | wc -c > /secret-length # %s
`, env[testenv.AuthBase], canary(t, "nonce"))) // secrets do not enter BuildKit's cache keys: bust the cache
	gitPass := canary(t, "gitpass")
	canaries := []string{srv.pass, srv.token, srv.signature, buildSecret, gitPass, pass}
	registry := map[string]any{"url": reg, "username": user, "password": pass}
	params := func(tag string, extra map[string]any) map[string]any {
		img := map[string]any{"image": "e2e/secrets", "tag": tag}
		for k, v := range extra {
			img[k] = v
		}
		return map[string]any{
			"source":  map[string]any{"dockerfile": map[string]any{"url": srv.url("/Dockerfile")}},
			"target":  map[string]any{"images": []any{img}, "registry": registry},
			"secrets": map[string]any{"tok": map[string]any{"value": buildSecret}},
		}
	}
	tag := testenv.UniqueTag("secrets")

	t.Run("validate", func(t *testing.T) {
		bad := params(tag, map[string]any{"platforms": []string{"amd64"}})
		bad["source"].(map[string]any)["build_context"] = map[string]any{"url": "https://x:" + gitPass + "@git.example.com/r.git", "subdir": "../up"}
		bad["target"].(map[string]any)["registry"] = map[string]any{"url": "bob:" + pass + "@registry.example.com"}
		r := ibBinary(t, t.TempDir(), bad, "validate")
		if r.code != 2 || !strings.Contains(r.stderr, `"registry.example.com" is not a registry`) {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		noCanary(t, "validate", canaries, r.stdout, r.stderr)
	})

	t.Run("build", func(t *testing.T) {
		r := ibBinary(t, t.TempDir(), params(tag, nil), "build", "--builder", env[testenv.BuildKit], "--progress", "plain")
		if r.code != 0 {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		noCanary(t, "build output", canaries, r.stdout, r.stderr)
		if !strings.Contains(r.stderr, "the token is ********") {
			t.Errorf("the step that prints the build secret is not in the progress, masked:\n%s", r.stderr)
		}
		if want := "?token=********&X-Amz-Signature=********&X-Amz-Expires=********"; !strings.Contains(r.res.Source.URL, want) {
			t.Errorf("source URL %q, want the query masked (%s)", r.res.Source.URL, want)
		}
		ref := r.res.Images[0].Ref
		meta := pushedMetadata(t, ref, testenv.Basic(user, pass))
		noCanary(t, "pushed image "+ref, canaries, meta)
		if !strings.Contains(meta, `"org.opencontainers.image.source":"http://`+strings.TrimPrefix(srv.URL, "http://")+`/Dockerfile?token=********`) {
			t.Errorf("the source label is not the URL without credentials:\n%s", meta)
		}
		// The secret reached the build (its length is in the image), not the image's metadata.
		if got := strings.TrimSpace(fileIn(t, ref, "", "/secret-length", remote.WithAuth(testenv.Basic(user, pass)))); got != fmt.Sprint(len(buildSecret)) {
			t.Errorf("secret length in the image %q, want %d", got, len(buildSecret))
		}
	})

	t.Run("build failure", func(t *testing.T) {
		p := params(tag+"-fail", nil)
		p["target"].(map[string]any)["registry"] = map[string]any{"url": reg, "username": user, "password": gitPass}
		r := ibBinary(t, t.TempDir(), p, "build", "--builder", env[testenv.BuildKit], "--progress", "plain")
		if r.code != 1 || r.res.Failed == nil {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		noCanary(t, "failed build", canaries, r.stdout, r.stderr)

		// A source that refuses: the error names the URL without its credentials.
		p = params(tag+"-fail2", nil)
		p["source"].(map[string]any)["dockerfile"] = map[string]any{"url": strings.Replace(srv.url("/missing"), srv.pass, "wrong-"+gitPass, 1)}
		r = ibBinary(t, t.TempDir(), p, "build", "--builder", env[testenv.BuildKit], "--progress", "plain")
		if r.code != 1 || r.res.Failed == nil || r.res.Failed.Step != "source" {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.res.Failed.Error, "/missing?token=********") {
			t.Errorf("the error does not name the URL: %s", r.res.Failed.Error)
		}
		noCanary(t, "failed download", canaries, r.stdout, r.stderr)
	})

	t.Run("dry run", func(t *testing.T) {
		r := ibBinary(t, t.TempDir(), params(tag, nil), "build", "--dry-run", "--builder", env[testenv.BuildKit], "--progress", "plain")
		if r.code != 0 {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		noCanary(t, "dry run", canaries, r.stdout, r.stderr)
	})

	t.Run("module", func(t *testing.T) {
		mod := moduleBinary(t)
		dir := t.TempDir()
		for name, opts := range map[string]map[string]any{
			"ok":      params(tag+"-module", nil),
			"invalid": params("bad tag", nil),
		} {
			args := map[string]any{"_ansible_check_mode": false, "_ansible_diff": true}
			for k, v := range opts {
				args[k] = v
			}
			data, _ := json.Marshal(args)
			argsFile := filepath.Join(dir, name+".json")
			if err := os.WriteFile(argsFile, data, 0o600); err != nil {
				t.Fatal(err)
			}
			logFile := filepath.Join(dir, name+".log")
			cmd := exec.Command(mod, argsFile)
			cmd.Env = append(os.Environ(), "IMAGEBUILDER_MODULE_LOG="+logFile, "BUILDKIT_HOST="+env[testenv.BuildKit], "DOCKER_HOST=unix:///nonexistent.sock")
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			_ = cmd.Run()
			var res map[string]any
			if err := json.Unmarshal(out.Bytes(), &res); err != nil {
				t.Fatalf("%s: module output is not JSON: %v\n%s\n%s", name, err, out.String(), errb.String())
			}
			if failed, _ := res["failed"].(bool); failed != (name == "invalid") {
				t.Errorf("%s: failed=%v: %s", name, failed, res["msg"])
			}
			log, _ := os.ReadFile(logFile)
			noCanary(t, "module "+name, canaries, out.String(), errb.String(), string(log))
		}
	})
}

var (
	modOnce sync.Once
	modPath string
	modErr  error
)

// moduleBinary builds the image_build module once per test process.
func moduleBinary(t *testing.T) string {
	t.Helper()
	modOnce.Do(func() {
		bin := binary(t)
		modPath = filepath.Join(filepath.Dir(bin), "image_build")
		out, err := exec.Command("go", "build", "-o", modPath, "../../modules/image_build").CombinedOutput()
		if err != nil {
			modErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if modErr != nil {
		t.Fatal(modErr)
	}
	return modPath
}

// TestBuildSecrets: RUN --mount=type=secret reads secrets given from the environment and from
// a file, on both endpoints; neither enters the image's config or history.
func TestBuildSecrets(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.Base)
	fromEnv, fromFile := canary(t, "env"), canary(t, "file")
	secretFile := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(secretFile, []byte(fromFile), 0o600); err != nil {
		t.Fatal(err)
	}
	// Secrets do not enter BuildKit's cache keys: every run needs steps of its own.
	repo := testenv.GitRepoURL(t, map[string]string{"Dockerfile": fmt.Sprintf(`FROM %s
RUN echo %s > /nonce
RUN --mount=type=secret,id=tok cat /run/secrets/tok > /x
RUN --mount=type=secret,id=filetok,required=true cat /run/secrets/filetok > /y
`, env[testenv.Base], canary(t, "nonce"))})
	t.Setenv("IMAGEBUILDER_TEST_SECRET_TOK", fromEnv)
	for kind, endpoint := range endpoints(t) {
		t.Run(kind, func(t *testing.T) {
			tag := testenv.UniqueTag(kind)
			p := request(repo, env[testenv.Registry], map[string]any{"image": "e2e/build-secrets", "tag": tag,
				"secrets": map[string]any{"filetok": map[string]any{"file": secretFile}}})
			p["secrets"] = map[string]any{"tok": map[string]any{"env": "IMAGEBUILDER_TEST_SECRET_TOK"}}
			r := ibBinary(t, t.TempDir(), p, "build", "--builder", endpoint, "--progress", "plain")
			if r.code != 0 {
				t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			ref := r.res.Images[0].Ref
			if got := fileIn(t, ref, "", "/x"); got != fromEnv {
				t.Errorf("/x = %q, want the secret from the environment", got)
			}
			if got := fileIn(t, ref, "", "/y"); got != fromFile {
				t.Errorf("/y = %q, want the secret from the file", got)
			}
			noCanary(t, "image config and history", []string{fromEnv, fromFile}, pushedMetadata(t, ref, authn.Anonymous))
			noCanary(t, "output", []string{fromEnv, fromFile}, r.stdout, r.stderr)

			// A missing secret fails before anything builds, naming the field.
			p["secrets"] = map[string]any{"tok": map[string]any{"env": "IMAGEBUILDER_TEST_UNSET_VARIABLE"}}
			r = ibBinary(t, t.TempDir(), p, "build", "--builder", endpoint, "--progress", "plain")
			if r.code != 1 || r.res.Failed == nil || !strings.Contains(r.res.Failed.Error, "/secrets/tok: environment variable IMAGEBUILDER_TEST_UNSET_VARIABLE is not set") {
				t.Fatalf("missing secret: exit %d\n%s", r.code, r.stdout)
			}
		})
	}
}

// TestBuildSSHForward: ssh: [default] forwards the agent at SSH_AUTH_SOCK to RUN
// --mount=type=ssh on both endpoints, as docker buildx build --ssh default does; the agent
// answers from inside the build (the step lists its key), and nothing of it stays in the image.
func TestBuildSSHForward(t *testing.T) {
	env := testenv.Require(t, testenv.Registry, testenv.Base)
	// A real ssh agent holding one key, on a socket of this test.
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	comment := canary(t, "agent-key")
	if err := keyring.Add(agent.AddedKey{PrivateKey: key, Comment: comment}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _ = agent.ServeAgent(keyring, c) }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	// busybox has no ssh client: a small static one (testdata/agentlist) lists the agent's keys
	// from inside the build.
	client := filepath.Join(t.TempDir(), "agentlist")
	build := exec.Command("go", "build", "-o", client, "./testdata/agentlist")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the agent client: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(client)
	if err != nil {
		t.Fatal(err)
	}
	repo := testenv.GitRepoURL(t, map[string]string{
		"agentlist": string(bin),
		"Dockerfile": fmt.Sprintf(`FROM %s
COPY agentlist /agentlist
RUN chmod 0755 /agentlist
RUN --mount=type=ssh,required=true /agentlist > /answer # %s
`, env[testenv.Base], canary(t, "nonce"))})
	for kind, endpoint := range endpoints(t) {
		t.Run(kind, func(t *testing.T) {
			p := request(repo, env[testenv.Registry], map[string]any{"image": "e2e/ssh", "tag": testenv.UniqueTag(kind), "platforms": []string{"linux/amd64"}})
			p["ssh"] = "default" // the shorthand for [default]
			r := ibBinary(t, t.TempDir(), p, "build", "--builder", endpoint, "--progress", "plain")
			if r.code != 0 {
				t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			answer := fileIn(t, r.res.Images[0].Ref, "", "/answer")
			if !strings.Contains(answer, comment) {
				t.Errorf("the agent's answer from inside the build does not list the key %q: %q", comment, answer)
			}
			// Without the forward the step fails: the test can fail. (No cache: an ssh mount does
			// not enter BuildKit's cache keys, so the cached step would pass.)
			delete(p, "ssh")
			p["builder"] = map[string]any{"no_cache": true}
			p["target"].(map[string]any)["images"] = []map[string]any{{"image": "e2e/ssh", "tag": testenv.UniqueTag(kind + "-no"), "platforms": []string{"linux/amd64"}}}
			if r := ibBinary(t, t.TempDir(), p, "build", "--builder", endpoint, "--progress", "plain"); r.code != 1 {
				t.Errorf("a build without the ssh forward: exit %d, want 1", r.code)
			}
		})
	}
}
