// Package buildah is a daemonless [builder.Builder]: it builds with the buildah command (Debian's
// buildah package) in a storage directory it owns, and pushes what it built by digest only
// through internal/registry.
//
// Every call runs buildah with --root and --runroot under that directory and one storage
// driver (vfs unless told otherwise), so it never touches the system's container storage and
// needs no daemon. A request's platforms are built one `buildah build --platform P` each
// (concurrently; a foreign platform runs under qemu binfmt) and, for several, joined by an OCI
// index the registry client assembles, as the docker driver does.
//
// Pushing by digest only: buildah can push only to a tagged destination (docker://REPO means
// REPO:latest), so the image is not pushed by buildah. Instead internal/registry pushes it by
// digest, reading it, only when its push cache does not already know the image ID, from a
// docker-archive that `buildah push ID docker-archive:FILE` writes (see [builder.PushArchive]).
// No tag is ever created.
//
// Credentials come only from the request's Credentials callback: buildah pulls with a
// temporary auth file (--authfile, 0600, removed after the build) holding the answers for the
// registries the Dockerfile pulls from, and runs with HOME and DOCKER_CONFIG pointing at an
// empty directory so that it cannot read the user's Docker or containers auth files; the
// registry client that pushes asks the same callback. Build secrets are written to 0600 files
// in a temporary directory (--secret id=ID,src=FILE), never onto the command line.
package buildah

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/dockerfile"
	"github.com/imagebuilder/imagebuilder/internal/registry"
)

// Kind is the kind of endpoint this builder reports.
const Kind builder.Kind = "buildah"

// Storage drivers.
const (
	DriverVFS     = "vfs"
	DriverOverlay = "overlay"
)

// Config configures a [Builder].
type Config struct {
	// Dir is the directory the builder owns: buildah's storage (Dir/storage), its run root
	// (Dir/run unless RunRoot) and the push cache (Dir/push-cache.json). Default:
	// $XDG_CACHE_HOME/imagebuilder/buildah (~/.cache/imagebuilder/buildah).
	Dir string
	// RunRoot overrides buildah's --runroot (transient state and locks).
	RunRoot string
	// Driver is the storage driver: "vfs" (the default: works as root and rootless, inside
	// containers and on any file system, at the cost of a full copy per layer) or "overlay"
	// (faster and smaller; needs a kernel and a file system that allow overlay mounts).
	Driver string
	// Program is the buildah binary (default: buildah on PATH).
	Program string
	// TempDir is where the per-build files (auth file, registries.conf, secrets, staged
	// archives) go; default os.TempDir().
	TempDir string
}

// Query keys of [ConfigFromQuery].
const (
	QueryRoot    = "root"
	QueryRunRoot = "runroot"
	QueryDriver  = "driver"
	QueryProgram = "buildah"
)

// ConfigFromQuery reads a Config from endpoint query values (plugin:buildah?root=DIR&driver=vfs):
// root (Dir), runroot, driver and buildah (Program). Unknown keys are an error naming them.
func ConfigFromQuery(q url.Values) (Config, error) {
	var cfg Config
	for k, vs := range q {
		if len(vs) != 1 {
			return Config{}, fmt.Errorf("query value %q given %d times", k, len(vs))
		}
		v := vs[0]
		switch k {
		case QueryRoot:
			cfg.Dir = v
		case QueryRunRoot:
			cfg.RunRoot = v
		case QueryDriver:
			cfg.Driver = v
		case QueryProgram:
			cfg.Program = v
		default:
			return Config{}, fmt.Errorf("unknown query value %q (want %s, %s, %s or %s)", k, QueryRoot, QueryRunRoot, QueryDriver, QueryProgram)
		}
	}
	return cfg, nil
}

// Builder builds with buildah. It is safe for concurrent use.
type Builder struct {
	cfg     Config
	storage string // --root
	runRoot string // --runroot

	// closing ends every build in flight when Close is called; builds counts them, so that
	// Close can wait for them to stop buildah and remove their files.
	closing context.Context
	close   context.CancelFunc
	builds  sync.WaitGroup
}

var _ builder.Builder = (*Builder)(nil)

// New checks cfg, fills in its defaults and returns a builder; it creates the directory but
// does not run buildah.
func New(cfg Config) (*Builder, error) {
	if cfg.Driver == "" {
		cfg.Driver = DriverVFS
	}
	if cfg.Driver != DriverVFS && cfg.Driver != DriverOverlay {
		return nil, fmt.Errorf("configuring buildah: storage driver %q (want %s or %s)", cfg.Driver, DriverVFS, DriverOverlay)
	}
	if cfg.Program == "" {
		cfg.Program = "buildah"
	}
	if cfg.Dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("configuring buildah: no storage directory given and %w", err)
		}
		cfg.Dir = filepath.Join(cache, "imagebuilder", "buildah")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("configuring buildah: storage directory %q: %w", cfg.Dir, err)
	}
	cfg.Dir = dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("configuring buildah: creating the storage directory: %w", err)
	}
	b := &Builder{cfg: cfg, storage: filepath.Join(dir, "storage"), runRoot: cfg.RunRoot}
	b.closing, b.close = context.WithCancel(context.Background())
	if b.runRoot == "" {
		b.runRoot = filepath.Join(dir, "run")
	}
	return b, nil
}

// Endpoint names the builder in results and errors: "buildah:" and its directory.
func (b *Builder) Endpoint() string { return string(Kind) + ":" + b.cfg.Dir }

// Selection names the builder; it is always chosen explicitly.
func (b *Builder) Selection() builder.Selection {
	return builder.Selection{Kind: Kind, Endpoint: b.Endpoint(), Origin: builder.OriginExplicit}
}

// closeWait bounds how long Close waits for the builds it cancelled to stop buildah and remove
// their files: below the two seconds go-plugin gives a plugin to exit before killing it.
const closeWait = 1500 * time.Millisecond

// Close cancels the builds in flight and waits (up to closeWait) until they have stopped
// buildah and removed their files; later builds fail. Served as a plugin, this runs when the
// host closes the plugin, before the process exits.
func (b *Builder) Close() error {
	b.close()
	done := make(chan struct{})
	go func() { b.builds.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeWait):
	}
	return nil
}

// globalArgs are the options before buildah's subcommand.
func (b *Builder) globalArgs() []string {
	return []string{"--root", b.storage, "--runroot", b.runRoot, "--storage-driver", b.cfg.Driver}
}

// Info runs `buildah version` and reads the qemu binfmt registrations.
func (b *Builder) Info(ctx context.Context) (builder.Info, error) {
	out, err := exec.CommandContext(ctx, b.cfg.Program, "version").Output()
	if err != nil {
		return builder.Info{}, fmt.Errorf("describing %s: running %s version: %w", b.Endpoint(), b.cfg.Program, exitError(err))
	}
	version, native := parseVersion(out)
	if native == "" {
		return builder.Info{}, fmt.Errorf("describing %s: %s version printed no OS/Arch", b.Endpoint(), b.cfg.Program)
	}
	return builder.Info{
		Kind:           Kind,
		Endpoint:       b.Endpoint(),
		NativePlatform: native,
		Platforms:      runnablePlatforms(native, binfmtDir),
		MultiPlatform:  false,
		Version:        version,
	}, nil
}

// parseVersion reads the version and the OS/Arch line of `buildah version`.
func parseVersion(out []byte) (version, platform string) {
	for line := range strings.Lines(string(out)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Version":
			version = strings.TrimSpace(v)
		case "OS/Arch":
			platform = strings.TrimSpace(v)
		}
	}
	return version, platform
}

// exitError adds a failed command's stderr to its error.
func exitError(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(bytes.TrimSpace(ee.Stderr)) > 0 {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
	}
	return err
}

// Build builds req, one buildah build per platform, and pushes the result by digest.
func (b *Builder) Build(ctx context.Context, req builder.Request) (*builder.Built, error) {
	b.builds.Add(1)
	defer b.builds.Done()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(b.closing, func() { cancel(errClosed) })
	defer stop()
	repo, plats, err := builder.CheckRequest(req)
	if err != nil {
		return nil, &builder.Error{Step: builder.StepValidate, Repository: req.Repository, Platforms: req.Platforms, Endpoint: b.Endpoint(), Err: err}
	}
	errInfo := builder.Error{Repository: repo.String(), Platforms: plats, Endpoint: b.Endpoint()}
	fail := func(step builder.Step, err error) error {
		e := errInfo
		e.Step, e.Err = step, err
		return &e
	}
	if len(plats) == 0 {
		info, err := b.Info(ctx)
		if err != nil {
			return nil, fail(builder.StepConnect, err)
		}
		plats = []string{info.NativePlatform}
		errInfo.Platforms = plats
	}

	work, err := newWorkDir(b.cfg.TempDir, req)
	if err != nil {
		return nil, fail(builder.StepValidate, err)
	}
	defer work.remove()
	if err := work.writeRegistryFiles(req, repo); err != nil {
		return nil, fail(builder.StepBuild, err)
	}
	regOpts := []registry.Option{
		registry.WithKeychain(callbackKeychain(req.Credentials)),
		registry.WithPushCache(filepath.Join(b.cfg.Dir, "push-cache.json")),
	}
	if req.Insecure {
		regOpts = append(regOpts, registry.WithInsecure(repo.RegistryStr()))
	}
	reg, err := registry.New(regOpts...)
	if err != nil {
		return nil, fail(builder.StepValidate, err)
	}

	sink := builder.NewProgressSink(req.Progress)
	pushed := make([]string, len(plats))
	g, gctx := errgroup.WithContext(ctx)
	for i, p := range plats {
		g.Go(func() error {
			d, err := b.buildOne(gctx, req, repo, p, work, reg, sink)
			pushed[i] = d
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	res := &builder.Built{Platforms: plats, Endpoint: b.Endpoint(), Digest: pushed[0]}
	if len(pushed) == 1 {
		return res, nil
	}
	done := sink.Step(fmt.Sprintf("[imagebuilder] pushing index %s", repo))
	res.Digest, err = reg.AssembleIndex(ctx, repo.Name(), pushed)
	done(err)
	if err != nil {
		return nil, fail(builder.StepIndex, err)
	}
	return res, nil
}

// storageRaceAttempts bounds the runs of one platform's build that lose containers/storage's
// naming race: builds in one storage that pull the same base name — a request's platforms,
// which run concurrently, or other requests — move the name from image to image, and a build
// that looks the name up just after another pull moved it fails with "locating pulled image
// ... image not known" (containers/storage#915, buildah#3794; Debian 12's buildah has it).
// Running the build again pulls again, which names its own image.
const storageRaceAttempts = 3

// storageRace reports whether buildah's error line is that naming race.
func storageRace(errLine string) bool {
	return strings.Contains(errLine, "locating pulled image") && strings.Contains(errLine, "image not known")
}

// buildOne builds one platform and pushes it by digest, returning the digest.
func (b *Builder) buildOne(ctx context.Context, req builder.Request, repo name.Repository, platform string, work *workDir, reg *registry.Client, sink *builder.ProgressSink) (string, error) {
	errInfo := builder.Error{Repository: repo.String(), Platforms: []string{platform}, Endpoint: b.Endpoint()}
	iidFile := filepath.Join(work.dir, "iid-"+strings.ReplaceAll(platform, "/", "-"))
	args := append(b.globalArgs(), buildArgs(req, platform, iidFile, work)...)
	var (
		tracker *builder.FailureTracker
		parser  *outputParser
		err     error
	)
	for attempt := 1; ; attempt++ {
		tracker = builder.NewFailureTracker()
		parser = newOutputParser("["+platform+"] ", func(s *builderStatus) {
			tracker.Observe(s)
			sink.Send(s)
		})
		err = b.run(ctx, args, work.env(), parser)
		parser.finish(err)
		if err == nil || ctx.Err() != nil || attempt == storageRaceAttempts || !storageRace(parser.errorLine) {
			break
		}
		sink.Step(fmt.Sprintf("[imagebuilder] [%s] building again: a concurrent pull took the base image's name in buildah's storage (containers/storage#915)", platform))(nil)
	}
	if err != nil {
		e := errInfo
		e.Step = builder.StepBuild
		e.Vertex, e.Output = tracker.Describe()
		e.Err = buildError(ctx, err, parser.errorLine)
		return "", &e
	}
	id, err := os.ReadFile(iidFile)
	if err != nil || len(bytes.TrimSpace(id)) == 0 {
		e := errInfo
		e.Step, e.Err = builder.StepBuild, fmt.Errorf("buildah wrote no image ID: %v", err)
		return "", &e
	}
	imageID := string(bytes.TrimSpace(id))

	done := sink.Step(fmt.Sprintf("[imagebuilder] pushing %s for %s", repo, platform))
	d, err := builder.PushArchive(ctx, reg, repo.Name(), imageID, work.dir, func(ctx context.Context, path string) error {
		return b.save(ctx, imageID, path, work)
	})
	done(err)
	if err != nil {
		e := errInfo
		e.Step, e.Err = builder.StepPush, err
		return "", &e
	}
	return d, nil
}

// save writes image id to a docker-archive at path.
func (b *Builder) save(ctx context.Context, id, path string, work *workDir) error {
	args := append(b.globalArgs(), "push", "--quiet", id, "docker-archive:"+path)
	var out bytes.Buffer
	cmd := b.command(ctx, args, work.env())
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("saving image %s from buildah's storage: %w: %s", id, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// buildError is the error of a failed buildah build: its "Error: ..." line when it printed
// one, and plainly the caller's cancellation when that ended it.
func buildError(ctx context.Context, err error, errLine string) error {
	if errLine != "" {
		err = fmt.Errorf("%s (%w)", errLine, err)
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%v)", context.Cause(ctx), err)
	}
	return err
}

// errClosed is why the builds in flight end when the builder is closed.
var errClosed = fmt.Errorf("the buildah builder was closed: %w", context.Canceled)

// stopGrace is how long buildah gets to clean up after SIGTERM before it is killed.
const stopGrace = 10 * time.Second

// command prepares a buildah process in its own process group, which a cancellation stops:
// SIGTERM to the group, then SIGKILL after stopGrace.
func (b *Builder) command(ctx context.Context, args []string, env []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, b.cfg.Program, args...)
	cmd.Env = env
	// Its own process group, so that a cancellation reaches its children; SIGTERM should this
	// process die, so that buildah stops its build container rather than leave it running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	return cmd
}

// run runs buildah with args, feeding its output (stdout and stderr, in order) line by line to
// parser. After a cancellation whatever is left of the process group is killed.
func (b *Builder) run(ctx context.Context, args, env []string, parser *outputParser) error {
	pr, pw := io.Pipe()
	cmd := b.command(ctx, args, env)
	cmd.Stdout, cmd.Stderr = pw, pw
	read := make(chan struct{})
	go func() {
		defer close(read)
		r := bufio.NewReader(pr)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				parser.line(strings.TrimRight(line, "\r\n"))
			}
			if err != nil {
				pr.CloseWithError(err)
				return
			}
		}
	}()
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
		if ctx.Err() != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	pw.Close()
	<-read
	if err != nil {
		return fmt.Errorf("running buildah: %w", err)
	}
	return nil
}

// buildArgs are the arguments of `buildah build` for one platform.
func buildArgs(req builder.Request, platform, iidFile string, work *workDir) []string {
	// The Dockerfile goes by its copy in the work directory: buildah splits -f at commas.
	args := []string{"build", "--layers", "--force-rm", "--platform", platform, "--iidfile", iidFile, "-f", work.dockerfile}
	// A Dockerfile's own ignore file (NAME.dockerignore beside it, as BuildKit reads it) wins
	// over the context's .dockerignore, which buildah reads by itself. (buildah would find the
	// first beside the Dockerfile too, but it reads a copy.)
	if fi, err := os.Stat(req.Dockerfile + ".dockerignore"); err == nil && fi.Mode().IsRegular() {
		args = append(args, "--ignorefile", req.Dockerfile+".dockerignore")
	}
	for _, k := range slices.Sorted(maps.Keys(req.BuildArgs)) {
		args = append(args, "--build-arg", k+"="+req.BuildArgs[k])
	}
	for _, k := range slices.Sorted(maps.Keys(req.Labels)) {
		args = append(args, "--label", k+"="+req.Labels[k])
	}
	if req.Target != "" {
		args = append(args, "--target", req.Target)
	}
	if req.NoCache {
		args = append(args, "--no-cache")
	}
	if req.Pull {
		args = append(args, "--pull=always")
	}
	for _, id := range slices.Sorted(maps.Keys(work.secrets)) {
		args = append(args, "--secret", "id="+id+",src="+work.secrets[id])
	}
	for _, f := range req.SSH {
		switch {
		case len(f.Paths) > 0:
			args = append(args, "--ssh", f.ID+"="+strings.Join(f.Paths, ","))
		case f.ID == "default":
			args = append(args, "--ssh", "default")
		default:
			args = append(args, "--ssh", f.ID+"="+os.Getenv("SSH_AUTH_SOCK"))
		}
	}
	args = append(args, "--authfile", work.authFile)
	return append(args, req.ContextDir)
}

// workDir holds one build's private files: the auth file, registries.conf, the secrets and an
// empty HOME. It is 0700 and removed after the build.
type workDir struct {
	dir          string
	home         string
	authFile     string
	registryConf string
	dockerfile   string            // the request's Dockerfile, copied
	secrets      map[string]string // id -> file
}

func newWorkDir(tempDir string, req builder.Request) (*workDir, error) {
	dir, err := os.MkdirTemp(tempDir, "imagebuilder-buildah-*")
	if err != nil {
		return nil, fmt.Errorf("creating a work directory: %w", err)
	}
	w := &workDir{dir: dir, home: filepath.Join(dir, "home"), authFile: filepath.Join(dir, "auth.json"),
		registryConf: filepath.Join(dir, "registries.conf"), secrets: map[string]string{}}
	if err := os.Mkdir(w.home, 0o700); err != nil {
		w.remove()
		return nil, fmt.Errorf("creating a work directory: %w", err)
	}
	// buildah splits some of its flags' values at commas (-f, --secret's src).
	if strings.Contains(dir, ",") {
		w.remove()
		return nil, fmt.Errorf("the temporary directory %q holds a comma, which buildah cannot take in a path", dir)
	}
	if req.Dockerfile != "" {
		data, err := os.ReadFile(req.Dockerfile)
		if err != nil {
			w.remove()
			return nil, fmt.Errorf("reading the Dockerfile: %w", err)
		}
		w.dockerfile = filepath.Join(dir, "Dockerfile")
		if err := os.WriteFile(w.dockerfile, data, 0o600); err != nil {
			w.remove()
			return nil, fmt.Errorf("copying the Dockerfile: %w", err)
		}
	}
	if len(req.Secrets) > 0 {
		sdir := filepath.Join(dir, "secrets")
		if err := os.Mkdir(sdir, 0o700); err != nil {
			w.remove()
			return nil, fmt.Errorf("writing the build secrets: %w", err)
		}
		i := 0
		for _, id := range slices.Sorted(maps.Keys(req.Secrets)) {
			if id == "" || strings.ContainsAny(id, ",=") {
				w.remove()
				return nil, fmt.Errorf("build secret id %q: must be non-empty and hold neither ',' nor '='", id)
			}
			// Files are numbered: an id is not necessarily a good file name.
			f := filepath.Join(sdir, fmt.Sprintf("%d", i))
			i++
			if err := os.WriteFile(f, req.Secrets[id], 0o600); err != nil {
				w.remove()
				return nil, fmt.Errorf("writing build secret %q: %w", id, err)
			}
			w.secrets[id] = f
		}
	}
	return w, nil
}

func (w *workDir) remove() { os.RemoveAll(w.dir) }

// env is buildah's environment: the caller's, with HOME, XDG_CONFIG_HOME and DOCKER_CONFIG
// pointing into the (empty) work home so that no auth file of the user's is read, and the
// build's own registries.conf and auth file.
func (w *workDir) env() []string {
	override := map[string]string{
		"HOME":                       w.home,
		"XDG_CONFIG_HOME":            filepath.Join(w.home, ".config"),
		"DOCKER_CONFIG":              filepath.Join(w.home, ".docker"),
		"REGISTRY_AUTH_FILE":         w.authFile,
		"CONTAINERS_REGISTRIES_CONF": w.registryConf,
		"BUILDAH_LAYERS":             "true",
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := override[k]; !ok && k != "BUILDAH_FORMAT" && k != "BUILDAH_ISOLATION" {
			env = append(env, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(override)) {
		env = append(env, k+"="+override[k])
	}
	return env
}

// pullHosts returns the registry hosts the build pulls from, as builders ask credentials for
// them (Docker Hub: index.docker.io): the request's Registries (what imagebuilder found) and
// those of the Dockerfile's external images (FROM, COPY --from, RUN --mount=from), so that a
// request that names none still pulls with credentials. A Dockerfile that does not parse adds
// nothing here: buildah reports it.
func pullHosts(req builder.Request) []string {
	var hosts []string
	add := func(h string) {
		if h = builder.RegistryHost(h); h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	for _, h := range req.Registries {
		add(h)
	}
	data, err := os.ReadFile(req.Dockerfile)
	if err != nil {
		return hosts
	}
	f, err := dockerfile.Parse(data, req.BuildArgs)
	if err != nil {
		return hosts
	}
	for _, ref := range f.ExternalImages() {
		if r, err := name.ParseReference(ref); err == nil {
			add(r.Context().RegistryStr())
		}
	}
	return hosts
}

// authEntry is one registry's entry in a containers auth file.
type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
}

// authKey is the key of host in a containers auth file (Docker Hub is "docker.io").
func authKey(host string) string {
	if host == name.DefaultRegistry {
		return "docker.io"
	}
	return host
}

// writeRegistryFiles writes the auth file, with the callback's answers for the hosts the
// Dockerfile pulls from (and nothing for the others), and a registries.conf in which short
// names mean Docker Hub, as with Docker, and loopback registries (and the repository's when
// the request marks it insecure) are reached over plain HTTP.
func (w *workDir) writeRegistryFiles(req builder.Request, repo name.Repository) error {
	hosts := pullHosts(req)
	auths := map[string]authEntry{}
	var insecure []string
	for _, h := range hosts {
		if registry.IsLoopback(h) || req.Insecure && h == repo.RegistryStr() {
			insecure = append(insecure, h)
		}
		if req.Credentials == nil {
			continue
		}
		user, secret, err := req.Credentials(h)
		if err != nil {
			return fmt.Errorf("loading credentials for %s: %w", h, err)
		}
		switch {
		case user == "" && secret == "":
		case user == "":
			auths[authKey(h)] = authEntry{IdentityToken: secret}
		default:
			auths[authKey(h)] = authEntry{Auth: base64.StdEncoding.EncodeToString([]byte(user + ":" + secret))}
		}
	}
	data, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		return fmt.Errorf("writing the auth file: %w", err)
	}
	if err := os.WriteFile(w.authFile, data, 0o600); err != nil {
		return fmt.Errorf("writing the auth file: %w", err)
	}
	if err := os.WriteFile(w.registryConf, registriesConf(insecure), 0o600); err != nil {
		return fmt.Errorf("writing registries.conf: %w", err)
	}
	return nil
}

// registriesConf is a registries.conf (v2) with Docker Hub as the only search registry and
// the given hosts insecure.
func registriesConf(insecure []string) []byte {
	var b bytes.Buffer
	b.WriteString("unqualified-search-registries = [\"docker.io\"]\nshort-name-mode = \"permissive\"\n")
	for _, h := range insecure {
		fmt.Fprintf(&b, "\n[[registry]]\nlocation = %q\ninsecure = true\n", h)
	}
	return b.Bytes()
}

// callbackKeychain answers the registry client with the request's Credentials callback (nil:
// anonymous everywhere).
type callbackKeychain func(host string) (string, string, error)

func (k callbackKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if k == nil {
		return authn.Anonymous, nil
	}
	user, secret, err := k(r.RegistryStr())
	switch {
	case err != nil:
		return nil, fmt.Errorf("loading credentials for %s: %w", r.RegistryStr(), err)
	case user == "" && secret == "":
		return authn.Anonymous, nil
	case user == "":
		return authn.FromConfig(authn.AuthConfig{IdentityToken: secret}), nil
	default:
		return authn.FromConfig(authn.AuthConfig{Username: user, Password: secret}), nil
	}
}
