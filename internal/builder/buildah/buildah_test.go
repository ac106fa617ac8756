package buildah

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// parse feeds output to a parser and returns the vertexes (last state, in start order), the
// logs per vertex name and the tracker's description of the failure.
func parse(output string, exit error) (vertexes []client.Vertex, logs map[string]string, failedVertex, failedOutput, errLine string) {
	byDigest := map[string]int{}
	logs = map[string]string{}
	names := map[string]string{}
	tracker := builder.NewFailureTracker()
	tick := time.Unix(0, 0)
	p := newOutputParser("[linux/amd64] ", func(s *client.SolveStatus) {
		tracker.Observe(s)
		for _, v := range s.Vertexes {
			names[v.Digest.String()] = v.Name
			if i, ok := byDigest[v.Digest.String()]; ok {
				vertexes[i] = *v
			} else {
				byDigest[v.Digest.String()] = len(vertexes)
				vertexes = append(vertexes, *v)
			}
		}
		for _, l := range s.Logs {
			logs[names[l.Vertex.String()]] += string(l.Data)
		}
	})
	p.now = func() time.Time { tick = tick.Add(time.Second); return tick }
	for l := range strings.Lines(output) {
		p.line(strings.TrimSuffix(l, "\n"))
	}
	p.finish(exit)
	failedVertex, failedOutput = tracker.Describe()
	return vertexes, logs, failedVertex, failedOutput, p.errorLine
}

func TestOutputParser(t *testing.T) {
	out := `STEP 1/3: FROM 127.0.0.1:5000/base/busybox:latest
Trying to pull 127.0.0.1:5000/base/busybox:latest...
STEP 2/3: ARG X=1
--> Using cache 28b1a63ba948408cce1e96d18772c38d71be6e0fa23f52ce0117ef412200184b
[1/2] STEP 3/3: RUN echo one && echo two && false
one
two
Error: building at STEP "RUN echo one && echo two && false": while running runtime: exit status 1
`
	vs, logs, fv, fo, errLine := parse(out, errors.New("exit status 1"))
	var names []string
	for _, v := range vs {
		names = append(names, v.Name)
		if v.Started == nil || v.Completed == nil {
			t.Errorf("vertex %q not started and completed", v.Name)
		}
	}
	want := []string{
		"[linux/amd64] STEP 1/3: FROM 127.0.0.1:5000/base/busybox:latest",
		"[linux/amd64] STEP 2/3: ARG X=1",
		"[linux/amd64] [1/2] STEP 3/3: RUN echo one && echo two && false",
	}
	if !slices.Equal(names, want) {
		t.Fatalf("vertexes = %q, want %q", names, want)
	}
	if !vs[1].Cached || vs[0].Cached || vs[2].Cached {
		t.Errorf("cached = %v %v %v, want only the ARG step", vs[0].Cached, vs[1].Cached, vs[2].Cached)
	}
	if vs[2].Error == "" || vs[0].Error != "" || vs[1].Error != "" {
		t.Errorf("errors = %q %q %q, want only the RUN step's", vs[0].Error, vs[1].Error, vs[2].Error)
	}
	if logs[want[0]] != "Trying to pull 127.0.0.1:5000/base/busybox:latest...\n" {
		t.Errorf("FROM logs = %q", logs[want[0]])
	}
	if fv != want[2] || fo != "one\ntwo" {
		t.Errorf("failure = %q with output %q, want the RUN step with one, two", fv, fo)
	}
	if !strings.HasPrefix(errLine, "building at STEP") {
		t.Errorf("error line = %q", errLine)
	}
}

func TestOutputParserSuccessAndPreamble(t *testing.T) {
	vs, logs, fv, _, _ := parse("a warning before any step\nSTEP 1/1: FROM x\nCOMMIT\n--> 6da7a6c9b5f1\n", nil)
	if len(vs) != 3 || vs[0].Name != "[linux/amd64] buildah build" || vs[2].Name != "[linux/amd64] COMMIT" {
		t.Fatalf("vertexes = %+v", vs)
	}
	for _, v := range vs {
		if v.Error != "" || v.Completed == nil {
			t.Errorf("vertex %q: error %q, completed %v", v.Name, v.Error, v.Completed)
		}
	}
	if logs["[linux/amd64] buildah build"] != "a warning before any step\n" || logs["[linux/amd64] COMMIT"] != "--> 6da7a6c9b5f1\n" {
		t.Errorf("logs = %q", logs)
	}
	if fv != "" {
		t.Errorf("a successful build reports failed vertex %q", fv)
	}
	// A failure without any output still fails a vertex.
	vs, _, fv, _, _ = parse("", errors.New("signal: killed"))
	if len(vs) != 1 || vs[0].Error != "signal: killed" || fv == "" {
		t.Errorf("vertexes of a silent failure = %+v", vs)
	}
}

func FuzzOutputParser(f *testing.F) {
	f.Add("STEP 1/2: FROM x\nhello\n--> Using cache abc\nCOMMIT y\nError: boom\n", true)
	f.Add("[2/3] STEP 4/9: RUN x\n\n\r\nError: \n", false)
	f.Fuzz(func(t *testing.T, out string, fail bool) {
		var exit error
		if fail {
			exit = errors.New("exit status 1")
		}
		vs, _, fv, _, _ := parse(out, exit)
		for _, v := range vs {
			if v.Completed == nil || v.Started == nil || !strings.HasPrefix(v.Name, "[linux/amd64] ") {
				t.Fatalf("vertex %+v not started, completed and prefixed", v)
			}
			if !fail && v.Error != "" {
				t.Fatalf("vertex %q failed in a successful build", v.Name)
			}
		}
		if fail && fv == "" {
			t.Fatal("a failed build names no failed vertex")
		}
	})
}

func TestBuildArgsCommandLine(t *testing.T) {
	dir := t.TempDir()
	df := filepath.Join(dir, "Dockerfile")
	testenv.WriteFiles(t, dir, map[string]string{"Dockerfile": "FROM x\n", "Dockerfile.dockerignore": "*.log\n"})
	req := builder.Request{
		ContextDir: "/ctx",
		Dockerfile: df,
		BuildArgs:  map[string]string{"B": "2", "A": "1"},
		Labels:     map[string]string{"l": "v"},
		Target:     "app",
		NoCache:    true,
		Pull:       true,
		Secrets:    map[string][]byte{"tok": []byte("the-secret-value")},
		SSH:        []builder.SSHForward{{ID: "default"}, {ID: "key", Paths: []string{"/k1", "/k2"}}},
	}
	w, err := newWorkDir(t.TempDir(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer w.remove()
	args := buildArgs(req, "linux/arm64", "/iid", w)
	got := strings.Join(args, " ")
	wantSeq := []string{"build", "--layers", "--force-rm", "--platform linux/arm64", "--iidfile /iid", "-f " + w.dockerfile,
		"--ignorefile " + df + ".dockerignore", "--build-arg A=1 --build-arg B=2", "--label l=v", "--target app",
		"--no-cache", "--pull=always", "--secret id=tok,src=" + w.secrets["tok"], "--ssh default --ssh key=/k1,/k2",
		"--authfile " + w.authFile}
	rest := got
	for _, s := range wantSeq {
		i := strings.Index(rest, s)
		if i < 0 {
			t.Fatalf("args %q lack %q (in order)", got, s)
		}
		rest = rest[i+len(s):]
	}
	if args[len(args)-1] != "/ctx" {
		t.Errorf("last argument = %q, want the context", args[len(args)-1])
	}
	if strings.Contains(got, "the-secret-value") {
		t.Error("the secret value is on the command line")
	}
	data, err := os.ReadFile(w.secrets["tok"])
	if err != nil || string(data) != "the-secret-value" {
		t.Errorf("secret file holds %q, %v", data, err)
	}
	if fi, err := os.Stat(w.secrets["tok"]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	// Without a Dockerfile.dockerignore buildah reads the context's .dockerignore itself.
	os.Remove(df + ".dockerignore")
	if got := strings.Join(buildArgs(req, "linux/amd64", "/iid", w), " "); strings.Contains(got, "--ignorefile") {
		t.Errorf("args %q name an ignore file that does not exist", got)
	}
}

func TestWorkDirRejectsBadSecretID(t *testing.T) {
	tmp := t.TempDir()
	if _, err := newWorkDir(tmp, builder.Request{Secrets: map[string][]byte{"a,src=/etc/passwd": nil}}); err == nil {
		t.Error("a secret id with ',' was accepted")
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("the refused work directory was left behind")
	}
}

func TestRegistryFiles(t *testing.T) {
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{"Dockerfile": `ARG BASE=127.0.0.1:5001/base/busybox
FROM ${BASE} AS a
FROM alpine AS b
COPY --from=registry.example.com/tools:1 /x /x
FROM a
`})
	var asked []string
	req := builder.Request{
		Dockerfile: filepath.Join(dir, "Dockerfile"),
		Insecure:   true,
		Registries: []string{"Quay.io"},
		Credentials: func(host string) (string, string, error) {
			asked = append(asked, host)
			switch host {
			case "127.0.0.1:5001":
				return "u", "p", nil
			case "index.docker.io":
				return "", "identity-token", nil
			}
			return "", "", nil
		},
	}
	w, err := newWorkDir(t.TempDir(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer w.remove()
	repo, _, err := builder.CheckRequest(builder.Request{Repository: "registry.example.com/team/app", Insecure: true, ContextDir: dir, Dockerfile: req.Dockerfile})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.writeRegistryFiles(req, repo); err != nil {
		t.Fatal(err)
	}
	if want := []string{"quay.io", "127.0.0.1:5001", "index.docker.io", "registry.example.com"}; !slices.Equal(asked, want) {
		t.Errorf("asked for %v, want %v", asked, want)
	}
	auth, _ := os.ReadFile(w.authFile)
	if want := `{"auths":{"127.0.0.1:5001":{"auth":"dTpw"},"docker.io":{"identitytoken":"identity-token"}}}`; string(auth) != want {
		t.Errorf("auth file = %s, want %s", auth, want)
	}
	conf, _ := os.ReadFile(w.registryConf)
	for _, want := range []string{`unqualified-search-registries = ["docker.io"]`, `location = "127.0.0.1:5001"`, `location = "registry.example.com"`} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("registries.conf lacks %s:\n%s", want, conf)
		}
	}
	if strings.Contains(string(conf), "docker.io\"\ninsecure") {
		t.Errorf("registries.conf marks Docker Hub insecure:\n%s", conf)
	}
	for _, f := range []string{w.authFile, w.registryConf} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, %v; want 0600", f, fi.Mode(), err)
		}
	}
	// A failing callback fails the build, naming the host.
	req.Credentials = func(string) (string, string, error) { return "", "", errors.New("helper crashed") }
	if err := w.writeRegistryFiles(req, repo); err == nil || !strings.Contains(err.Error(), "quay.io") {
		t.Errorf("error = %v, want one naming the host", err)
	}
}

func TestConfigFromQuery(t *testing.T) {
	q, _ := url.ParseQuery("root=/srv/b&driver=overlay&runroot=/run/b&buildah=/opt/buildah")
	cfg, err := ConfigFromQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	if cfg != (Config{Dir: "/srv/b", Driver: "overlay", RunRoot: "/run/b", Program: "/opt/buildah"}) {
		t.Errorf("config = %+v", cfg)
	}
	for _, bad := range []string{"rot=/x", "root=/a&root=/b"} {
		q, _ := url.ParseQuery(bad)
		if _, err := ConfigFromQuery(q); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, err := New(Config{Dir: t.TempDir(), Driver: "btrfs"}); err == nil || !strings.Contains(err.Error(), "btrfs") {
		t.Errorf("New with driver btrfs: %v", err)
	}
}

func TestRunnablePlatforms(t *testing.T) {
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{
		"status":       "enabled\n",
		"qemu-aarch64": "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n",
		"qemu-s390x":   "disabled\n",
		"qemu-riscv64": "enabled\n",
	})
	if got, want := runnablePlatforms("linux/amd64", dir), []string{"linux/amd64", "linux/386", "linux/arm64", "linux/riscv64"}; !slices.Equal(got, want) {
		t.Errorf("platforms = %v, want %v", got, want)
	}
	testenv.WriteFiles(t, dir, map[string]string{"status": "disabled\n"})
	if got, want := runnablePlatforms("linux/amd64", dir), []string{"linux/amd64", "linux/386"}; !slices.Equal(got, want) {
		t.Errorf("platforms with binfmt_misc disabled = %v, want %v", got, want)
	}
}

func TestParseVersion(t *testing.T) {
	v, p := parseVersion([]byte("Version:         1.28.2\nGo Version:      go1.19.8\nOS/Arch:         linux/amd64\nBuildPlatform:   linux/amd64\n"))
	if v != "1.28.2" || p != "linux/amd64" {
		t.Errorf("parseVersion = %q, %q", v, p)
	}
}

// TestStorageRace recognises the error of containers/storage's naming race, as Debian's
// buildah printed it in a run of the e2e tests, and nothing else.
func TestStorageRace(t *testing.T) {
	race := `Error: creating build container: locating pulled image "127.0.0.1:5000/base/busybox:latest" name in containers storage: 127.0.0.1:5000/base/busybox:latest: image not known`
	if !storageRace(race) {
		t.Errorf("not recognised: %s", race)
	}
	for _, other := range []string{
		`Error: creating build container: initializing source docker://127.0.0.1:5000/base/nothing:latest: reading manifest latest in 127.0.0.1:5000/base/nothing: manifest unknown`,
		`Error: building at STEP "RUN false": while running runtime: exit status 1`,
		"",
	} {
		if storageRace(other) {
			t.Errorf("taken for the race: %s", other)
		}
	}
}
