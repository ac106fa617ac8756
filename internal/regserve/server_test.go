package regserve

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/imagebuilder/imagebuilder/internal/registry"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// start serves cfg on a free loopback port until the test ends (then shuts it down and checks
// that it stopped cleanly) and returns its host:port.
func start(t *testing.T, cfg Config) (string, *Server) {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Root == "" {
		cfg.Root = t.TempDir()
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s.Ready().Listen, s
}

func push(t *testing.T, ref string, img v1.Image, opts ...remote.Option) {
	t.Helper()
	testenv.Push(t, ref, img, opts...)
}

func digestOf(t *testing.T, ref string, opts ...remote.Option) (string, error) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, opts...)
	if err != nil {
		return "", err
	}
	// Read every blob, so that a pull through really fetches (and caches) them.
	layers, err := img.Layers()
	if err != nil {
		return "", err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return "", err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return "", err
		}
	}
	d, err := img.Digest()
	return d.String(), err
}

func randomImage(t *testing.T) (v1.Image, string) {
	t.Helper()
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return img, d.String()
}

// upstream is an in-memory registry (go-containerregistry's) that counts its requests and,
// with a password, demands basic authentication.
type upstream struct {
	*httptest.Server
	host           string
	requests       atomic.Int64
	user, password string
}

func newUpstream(t *testing.T, user, password string) *upstream {
	u := &upstream{user: user, password: password}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		if u.password != "" {
			if ru, rp, ok := r.BasicAuth(); !ok || ru != u.user || rp != u.password {
				w.Header().Set("WWW-Authenticate", `Basic realm="upstream"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	u.host = strings.TrimPrefix(u.URL, "http://")
	return u
}

func (u *upstream) auth() remote.Option {
	return remote.WithAuth(testenv.Basic(u.user, u.password))
}

// TestFallThroughRouting: repositories route to their upstream by prefix, under the upstream's
// namespace, with the upstream's credentials (never logged); what was pulled is cached and
// served when the upstream is gone; a push shadows the upstream's tag.
func TestFallThroughRouting(t *testing.T) {
	hub := newUpstream(t, "", "")
	quay := newUpstream(t, "robot", "s3cret-upstream-pw")
	hubImg, hubDigest := randomImage(t)
	quayImg, quayDigest := randomImage(t)
	push(t, hub.host+"/team/x:1", hubImg)
	push(t, quay.host+"/ns/y:1", quayImg, quay.auth())

	var logs bytes.Buffer
	t.Cleanup(func() {
		logrus.SetOutput(os.Stderr)
		logrus.SetLevel(logrus.InfoLevel)
		logrus.SetFormatter(&logrus.TextFormatter{})
	})
	var asked []string
	reg, _ := start(t, Config{
		Upstreams: []string{"http://" + hub.host, "quay.io/=http://" + quay.host + "/ns"},
		Credentials: func(_ context.Context, host string) (registry.Credentials, error) {
			asked = append(asked, host)
			if host == quay.host {
				return registry.Credentials{Username: quay.user, Password: quay.password}, nil
			}
			return registry.Credentials{}, nil
		},
		LogOutput: &logs,
		LogLevel:  "debug",
		Logger:    slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})

	for ref, want := range map[string]string{
		reg + "/team/x:1":    hubDigest,  // default rule: same name upstream
		reg + "/quay.io/y:1": quayDigest, // prefix stripped, namespace ns/ prepended
	} {
		if got, err := digestOf(t, ref); err != nil || got != want {
			t.Errorf("%s = %s %v, want %s", ref, got, err, want)
		}
	}
	if _, err := digestOf(t, reg+"/quay.io/team/x:1"); err == nil {
		t.Error("quay.io/team/x resolved: the prefix rule must not fall back to the default upstream")
	}
	// The cache keeps what it fetched under this registry's name (quay.io/y), not the upstream's
	// (ns/y, which here is another repository, of the default upstream).
	if got, err := digestOf(t, reg+"/ns/y:1"); err == nil {
		t.Errorf("ns/y:1 resolved to %s: quay.io/y was cached under the upstream's name", got)
	}
	if strings.Join(asked, ",") != hub.host+","+quay.host && strings.Join(asked, ",") != quay.host+","+hub.host {
		t.Errorf("credentials were read for %v, want each upstream once", asked)
	}

	// The catalog lists what is stored here: pulled through (under this registry's names) and pushed.
	resp, err := http.Get("http://" + reg + "/v2/_catalog")
	if err != nil {
		t.Fatal(err)
	}
	var catalog struct{ Repositories []string }
	err = json.NewDecoder(resp.Body).Decode(&catalog)
	resp.Body.Close()
	if got := strings.Join(catalog.Repositories, " "); err != nil || got != "quay.io/y team/x" {
		t.Errorf("catalog = %q %v, want the pulled quay.io/y and team/x", got, err)
	}

	// Cached: with the upstream gone, the pulled tag and its blobs are still served.
	quay.Close()
	if got, err := digestOf(t, reg+"/quay.io/y:1"); err != nil || got != quayDigest {
		t.Errorf("quay.io/y:1 with its upstream down = %s %v, want the cached %s", got, err, quayDigest)
	}

	// A push of a tag that exists upstream shadows it; the upstream is not asked for it.
	local, localDigest := randomImage(t)
	push(t, reg+"/team/x:1", local)
	before := hub.requests.Load()
	if got, err := digestOf(t, reg+"/team/x:1"); err != nil || got != localDigest {
		t.Errorf("team/x:1 after the push = %s %v, want the pushed %s", got, err, localDigest)
	}
	if n := hub.requests.Load() - before; n != 0 {
		t.Errorf("serving the pushed team/x:1 asked the upstream %d times", n)
	}
	// Deleting the pushed tag uncovers the upstream's again.
	if err := remote.Delete(mustRef(t, reg+"/team/x:1")); err != nil {
		t.Fatal(err)
	}
	if got, err := digestOf(t, reg+"/team/x:1"); err != nil || got != hubDigest {
		t.Errorf("team/x:1 after deleting the pushed tag = %s %v, want the upstream's %s", got, err, hubDigest)
	}

	if strings.Contains(logs.String(), quay.password) {
		t.Errorf("the log shows the upstream password:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "_state=") || regexp.MustCompile(`_state=[^*]`).MatchString(logs.String()) {
		t.Errorf("the log does not show request URIs with their query values masked:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "pulling through") {
		t.Errorf("the log does not say which upstreams it reached:\n%s", logs.String())
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestHtpasswd: with --htpasswd every request must authenticate, the referrers API too.
func TestHtpasswd(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw-for-test"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(file, []byte("builder:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg, _ := start(t, Config{Htpasswd: file})
	img, want := randomImage(t)
	ref := mustRef(t, reg+"/team/app:1")
	good := remote.WithAuth(&authn.Basic{Username: "builder", Password: "pw-for-test"})
	bad := remote.WithAuth(&authn.Basic{Username: "builder", Password: "wrong"})

	for what, opt := range map[string]remote.Option{"anonymous": remote.WithAuth(authn.Anonymous), "wrong password": bad} {
		if err := remote.Write(ref, img, opt); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("%s push: %v, want 401", what, err)
		}
	}
	if err := remote.Write(ref, img, good); err != nil {
		t.Fatalf("authenticated push: %v", err)
	}
	if _, err := digestOf(t, ref.String()); err == nil {
		t.Error("anonymous pull allowed")
	}
	if got, err := digestOf(t, ref.String(), good); err != nil || got != want {
		t.Errorf("authenticated pull = %s %v, want %s", got, err, want)
	}
	// The monolithic upload the extension answers itself is authenticated too.
	blob := "anonymous blob"
	resp, err := http.Post(fmt.Sprintf("http://%s/v2/team/app/blobs/uploads/?digest=%s", reg, digest.FromString(blob)), "application/octet-stream", strings.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous monolithic upload: %s, want 401", resp.Status)
	}
	url := fmt.Sprintf("http://%s/v2/team/app/referrers/%s", reg, want)
	resp, err = http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("anonymous referrers: %s, WWW-Authenticate %q, want 401 with a challenge", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.SetBasicAuth("builder", "pw-for-test")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	err = json.NewDecoder(resp.Body).Decode(&idx)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || idx.SchemaVersion != 2 {
		t.Errorf("authenticated referrers: %s %v %+v", resp.Status, err, idx)
	}
}

// TestShutdown: a shutdown lets an upload in flight finish, then removes the upload sessions
// nobody can finish any more.
func TestShutdown(t *testing.T) {
	root := t.TempDir()
	s, err := New(context.Background(), Config{Listen: "127.0.0.1:0", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	base := "http://" + s.Ready().Listen + "/v2/team/app/blobs/uploads/"

	// An abandoned session, and one whose PATCH is still sending when the shutdown starts.
	open := func() string {
		resp, err := http.Post(base, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST upload: %s", resp.Status)
		}
		loc := resp.Header.Get("Location")
		if !strings.HasPrefix(loc, "http") {
			loc = "http://" + s.Ready().Listen + loc
		}
		return loc
	}
	abandoned := open()
	patch := func(loc string, body io.Reader) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPatch, loc, body)
		req.Header.Set("Content-Type", "application/octet-stream")
		return http.DefaultClient.Do(req)
	}
	resp, err := patch(abandoned, strings.NewReader("half"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	pr, pw := io.Pipe()
	patched := make(chan *http.Response, 1)
	go func() {
		resp, err := patch(open(), pr)
		if err != nil {
			t.Errorf("PATCH in flight: %v", err)
			patched <- nil
			return
		}
		resp.Body.Close()
		patched <- resp
	}()
	pw.Write([]byte("first part, "))
	time.Sleep(200 * time.Millisecond) // the PATCH is being served
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-shut:
		t.Fatalf("shutdown returned (%v) while a request was in flight", err)
	default:
	}
	pw.Write([]byte("second part"))
	pw.Close()
	if resp := <-patched; resp == nil || resp.StatusCode != http.StatusAccepted {
		t.Errorf("the PATCH in flight did not finish: %v", resp)
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
	uploads, _ := filepath.Glob(filepath.Join(root, "docker/registry/v2/repositories/team/app/_uploads/*"))
	if len(uploads) != 0 {
		t.Errorf("upload sessions left after the shutdown: %v", uploads)
	}
	if _, err := http.Get(base); err == nil {
		t.Error("still answering after the shutdown")
	}
}

// TestUpstreamDown: an upstream that does not answer (here nothing listens) costs nothing to
// what is stored here: pushes and pulls of local content work, a missing image is a 404.
func TestUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	var logs testenv.SyncBuffer
	reg, _ := start(t, Config{Upstreams: []string{"http://" + dead}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	img, want := randomImage(t)
	push(t, reg+"/team/app:1", img)
	if got, err := digestOf(t, reg+"/team/app:1"); err != nil || got != want {
		t.Errorf("pushed image with the upstream down = %s %v, want %s", got, err, want)
	}
	resp, err := http.Get("http://" + reg + "/v2/team/other/manifests/1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("missing image with the upstream down: %s, want 404", resp.Status)
	}
	if !strings.Contains(logs.String(), "upstream unavailable") {
		t.Errorf("the log does not say the upstream is unavailable:\n%s", logs.String())
	}
}

// TestTLS: --tls-cert/--tls-key serve HTTPS that a client trusting the certificate uses.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := testenv.NewCert(t, dir, "ca", nil, nil)
	testenv.NewCert(t, dir, "server", ca, caKey)
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	reg, s := start(t, Config{TLSCert: certFile, TLSKey: keyFile})
	if !strings.HasPrefix(s.Ready().URL, "https://") {
		t.Errorf("ready URL %q is not https", s.Ready().URL)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	r, err := name.ParseReference(reg+"/team/app:1", name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	img, want := randomImage(t)
	if err := remote.Write(r, img, remote.WithTransport(tr)); err != nil {
		t.Fatalf("push over TLS: %v", err)
	}
	got, err := remote.Head(r, remote.WithTransport(tr))
	if err != nil || got.Digest.String() != want {
		t.Errorf("HEAD over TLS = %v %v, want %s", got, err, want)
	}
	resp, err := http.Get("http://" + reg + "/v2/")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("plain HTTP answered %s on a TLS listener", resp.Status)
		}
	}
}

// TestShutdownUnused: a registry that never stored anything stops without an error (the
// command exits 0 on SIGTERM).
func TestShutdownUnused(t *testing.T) {
	s, err := New(context.Background(), Config{Listen: "127.0.0.1:0", Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// TestNestedNames: a repository's tag and a repository below it with the same name (team:app,
// team/app) live side by side, pushed tags and referrers alike, with an upstream configured.
func TestNestedNames(t *testing.T) {
	up := newUpstream(t, "", "")
	reg, _ := start(t, Config{Upstreams: []string{"http://" + up.host}})
	a, aDigest := randomImage(t)
	b, bDigest := randomImage(t)
	push(t, reg+"/team:app", a)
	push(t, reg+"/team/app:1", b)
	for ref, want := range map[string]string{reg + "/team:app": aDigest, reg + "/team/app:1": bDigest} {
		if got, err := digestOf(t, ref); err != nil || got != want {
			t.Errorf("%s = %s %v, want %s", ref, got, err, want)
		}
	}
}

// TestDockerConfigCredentials: without Config.Credentials, an upstream's credentials come from
// the Docker config (DOCKER_CONFIG), as imagebuilder build reads them.
func TestDockerConfigCredentials(t *testing.T) {
	up := newUpstream(t, "robot", "from-docker-config")
	img, want := randomImage(t)
	push(t, up.host+"/team/x:1", img, up.auth())
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(up.user + ":" + up.password))
	config := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, up.host, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	reg, _ := start(t, Config{Upstreams: []string{"http://" + up.host}})
	if got, err := digestOf(t, reg+"/team/x:1"); err != nil || got != want {
		t.Errorf("pull through an authenticated upstream = %s %v, want %s", got, err, want)
	}
}
