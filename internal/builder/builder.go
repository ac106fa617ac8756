// Package builder runs one image build on a BuildKit endpoint and puts the result into a
// registry, addressed by digest only.
//
// Two drivers sit behind the [Builder] interface:
//
//   - buildkit: a buildkitd reached directly (unix://, tcp://, docker-container://, kube-pod://,
//     ...). The Dockerfile frontend builds every platform in one solve and the image exporter
//     pushes by digest; the digest comes from the exporter response.
//   - docker: a Docker daemon's embedded BuildKit, reached through the Engine API (DialHijack on
//     /grpc and /session). A daemon with the classic image store (Docker 20.10 and later without
//     the containerd store) has no image exporter: each platform is built in its own solve,
//     loaded into the daemon (exporter "moby"), exported with ImageSave and pushed by digest,
//     and several platforms are joined by an OCI index pushed by digest.
//
// Either way a build never creates or moves a tag: the caller moves tags once every image of
// a request is built.
//
// [Request], [Built] and [Info] are plain data so that a builder can later live in another
// process (a plugin); the two function fields of Request are callbacks such a transport
// serves over its back channel.
package builder

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/client"
)

// Request describes one image build.
type Request struct {
	// ContextDir is the build context directory. BuildKit applies its .dockerignore.
	ContextDir string `json:"context_dir"`
	// Dockerfile is the absolute path of the Dockerfile; it may lie outside ContextDir.
	Dockerfile string `json:"dockerfile"`
	// Platforms to build, as os/arch[/variant]. Empty means the endpoint's native platform.
	Platforms []string `json:"platforms,omitempty"`
	// BuildArgs are the Dockerfile ARG values.
	BuildArgs map[string]string `json:"build_args,omitempty"`
	// Target is the stage to build; empty means the last stage.
	Target string `json:"target,omitempty"`
	// Labels are added to the image configuration.
	Labels map[string]string `json:"labels,omitempty"`
	// NoCache disables the build cache.
	NoCache bool `json:"no_cache,omitempty"`
	// Pull resolves base images from their registry even when cached.
	Pull bool `json:"pull,omitempty"`
	// Repository is where the image is pushed, e.g. "registry.example.com/team/app", without a
	// tag or digest. The image is pushed by digest only: no tag is created or moved.
	Repository string `json:"repository"`
	// Insecure marks Repository's registry insecure for the buildkit driver's exporter: plain
	// HTTP allowed and TLS not verified. Loopback registries get plain HTTP without it (BuildKit
	// and the registry package decide that alike); TLS is verified unless Insecure.
	Insecure bool `json:"insecure,omitempty"`
	// SSH lists the ssh agent sockets or keys forwarded to the build, by id.
	SSH []SSHForward `json:"ssh,omitempty"`
	// Registries are the registry hosts the build pulls from (the hosts of the Dockerfile's
	// base images, e.g. "registry.example.com:5000", Docker Hub as "index.docker.io"). With
	// the repository's host they are the hosts a plugin gets credentials for (see
	// [Request.RegistryHosts]); the in-process drivers do not need them.
	Registries []string `json:"registries,omitempty"`

	// Credentials answers for a registry host (e.g. "registry.example.com:5000"; Docker Hub is
	// asked as "index.docker.io") with the credentials BuildKit uses to pull base images and, on
	// a buildkit endpoint, to push. Both empty means anonymous; an empty username with a secret
	// is an identity (refresh) token. An error (a credential helper that fails, say) fails the
	// pull or push that asked. nil means anonymous for every host: the builder never reads the
	// Docker config itself. It may be called from several goroutines.
	Credentials func(host string) (username, secret string, err error) `json:"-"`
	// Publisher uploads what the docker driver exports from the daemon: every platform's image
	// by digest, and the index joining several. The docker driver needs one; the buildkit
	// driver's exporter pushes by itself.
	Publisher Publisher `json:"-"`
	// Secrets are the build secrets by id, for RUN --mount=type=secret. They are handed to
	// BuildKit over the session only, never stored or shown.
	Secrets map[string][]byte `json:"-"`
	// Progress receives BuildKit status events (and synthetic ones for pushes done outside
	// BuildKit); it is called from one goroutine at a time and may be nil.
	Progress func(*client.SolveStatus) `json:"-"`
}

// SSHForward is an ssh agent (or key files) forwarded to the build under an id, as docker
// buildx build --ssh ID=PATH,... does; no paths means the agent at SSH_AUTH_SOCK.
type SSHForward struct {
	ID    string   `json:"id"`
	Paths []string `json:"paths,omitempty"`
}

// Publisher is where the docker driver hands its images over: the one registry path every
// push shares (internal/registry's Client implements it).
type Publisher interface {
	// PushImage pushes img to repository (REGISTRY/PATH, no tag) by digest, creating no tag,
	// and returns its digest.
	PushImage(ctx context.Context, repository string, img v1.Image) (string, error)
	// AssembleIndex pushes, by digest, an index of manifests already in repository (given by
	// digest, one per platform) and returns its digest.
	AssembleIndex(ctx context.Context, repository string, manifests []string) (string, error)
	// ReuseLayers swaps the layers whose compressed blobs (of media type mt) the publisher
	// knows repository holds for ones that say so, so that the image built on them is not
	// compressed again to be pushed; the others come back as they are.
	ReuseLayers(ctx context.Context, repository string, mt types.MediaType, layers []v1.Layer) []v1.Layer
}

// Built describes what a build put into the registry.
type Built struct {
	// Digest is what the registry serves at Repository@Digest: the manifest digest for one
	// platform, the index digest for several.
	Digest string `json:"digest"`
	// Platforms are the platforms actually built, normalized (os/arch[/variant]).
	Platforms []string `json:"platforms"`
	// Endpoint names the endpoint that built the image, without credentials.
	Endpoint string `json:"endpoint"`
}

// Info describes an endpoint.
type Info struct {
	// Kind is "docker" or "buildkit", or another builder's own kind ("buildah").
	Kind Kind `json:"kind"`
	// Endpoint names the endpoint, without credentials.
	Endpoint string `json:"endpoint"`
	// NativePlatform is the platform the endpoint builds when a request names none.
	NativePlatform string `json:"native_platform"`
	// Platforms are all platforms the endpoint's workers can run, native or emulated.
	Platforms []string `json:"platforms"`
	// MultiPlatform reports whether one solve builds and exports several platforms; when
	// false the builder builds each platform in its own solve and assembles the index itself.
	MultiPlatform bool `json:"multi_platform"`
	// BuildKitVersion is the BuildKit version when the endpoint reports it (Docker daemons
	// before 23 do not).
	BuildKitVersion string `json:"buildkit_version,omitempty"`
	// DaemonVersion and APIVersion describe a Docker daemon; APIVersion is the negotiated
	// Engine API version.
	DaemonVersion string `json:"daemon_version,omitempty"`
	APIVersion    string `json:"api_version,omitempty"`
	// HostNetwork reports whether RUN steps are forced onto the host network (a Docker daemon
	// without a bridge network, or WithHostNetwork).
	HostNetwork bool `json:"host_network,omitempty"`
	// ContainerdStore reports a Docker daemon that keeps images in the containerd store.
	ContainerdStore bool `json:"containerd_store,omitempty"`
	// Version is the builder's own version, when it has one apart from the engine's (a
	// plugin's: buildah's version, say).
	Version string `json:"version,omitempty"`
}

// Builder runs image builds on one endpoint. It is safe for concurrent use.
type Builder interface {
	// Selection names the endpoint and why it was chosen, without a round trip.
	Selection() Selection
	// Info describes the endpoint (asking it).
	Info(ctx context.Context) (Info, error)
	// Build builds req and pushes the result to req.Repository by digest.
	Build(ctx context.Context, req Request) (*Built, error)
	// Close releases the connection to the endpoint.
	Close() error
}

// Step names the part of a build that failed.
type Step string

// Steps of a build, as reported by [Error].
const (
	StepConnect  Step = "connect"  // reaching the endpoint
	StepValidate Step = "validate" // checking the request
	StepBuild    Step = "build"    // the BuildKit solve (with the push, on a buildkit endpoint)
	StepPush     Step = "push"     // exporting from the Docker daemon and pushing by digest
	StepIndex    Step = "index"    // pushing the index that joins per-platform builds
)

// Error is the error of a failed build: it names the repository, the platforms, the endpoint
// and the step. Callers that report failures per step use errors.As.
type Error struct {
	Step       Step
	Repository string
	Platforms  []string
	Endpoint   string
	// Vertex is the name of the build step that failed (e.g. "[2/3] RUN make"), when known.
	Vertex string
	// Output is the tail of that step's output, when known.
	Output string
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	switch e.Step {
	case StepPush:
		b.WriteString("pushing ")
	case StepIndex:
		b.WriteString("pushing the index of ")
	case StepValidate:
		b.WriteString("checking the build of ")
	default:
		b.WriteString("building ")
	}
	b.WriteString(e.Repository)
	if len(e.Platforms) > 0 {
		b.WriteString(" for ")
		b.WriteString(strings.Join(e.Platforms, ","))
	}
	if e.Endpoint != "" {
		b.WriteString(" on ")
		b.WriteString(e.Endpoint)
	}
	if e.Vertex != "" {
		fmt.Fprintf(&b, ": step %q", e.Vertex)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	if e.Output != "" {
		b.WriteString("\noutput:\n")
		b.WriteString(e.Output)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// at returns a copy of e for a failure of step with cause err.
func (e Error) at(step Step, err error) *Error {
	e.Step, e.Err = step, err
	return &e
}

// Option configures New.
type Option func(*options) error

type options struct {
	tls           *TLSConfig
	hostNetwork   *bool
	tempDir       string
	getenv        func(string) string
	dockerContext string
}

// TLSConfig holds the TLS files for a tcp:// endpoint (buildkitd or Docker daemon).
type TLSConfig struct {
	// CACert is the CA bundle to verify the server; empty means the system roots.
	CACert string
	// Cert and Key are the client certificate and key; both or neither.
	Cert, Key string
	// ServerName overrides the name checked in the server certificate.
	ServerName string
}

// WithTLS connects to a tcp:// endpoint with TLS.
func WithTLS(cfg TLSConfig) Option {
	return func(o *options) error {
		if o.tls != nil {
			return errors.New("TLS configured twice")
		}
		if (cfg.Cert == "") != (cfg.Key == "") {
			return errors.New("TLS client certificate and key must be given together")
		}
		o.tls = &cfg
		return nil
	}
}

// WithHostNetwork forces RUN steps onto the host network (true) or leaves the network to the
// endpoint (false). Without it a Docker daemon that has no "bridge" network gets the host
// network, and a buildkitd decides itself. Host networking needs the network.host
// entitlement: Docker daemons allow it by default, buildkitd only with
// --allow-insecure-entitlement network.host.
func WithHostNetwork(enabled bool) Option {
	return func(o *options) error {
		if o.hostNetwork != nil {
			return errors.New("host network configured twice")
		}
		o.hostNetwork = &enabled
		return nil
	}
}

// WithTempDir sets where the docker driver stages images exported from the daemon before
// pushing them (default: os.TempDir()). The files are removed after each push.
func WithTempDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("empty temporary directory")
		}
		o.tempDir = dir
		return nil
	}
}

// WithGetenv replaces os.Getenv for reading the environment that chooses the endpoint:
// BUILDKIT_HOST, DOCKER_HOST, DOCKER_CONTEXT, DOCKER_CONFIG, DOCKER_CERT_PATH and
// DOCKER_TLS_VERIFY.
func WithGetenv(getenv func(string) string) Option {
	return func(o *options) error {
		if getenv == nil {
			return errors.New("nil getenv")
		}
		o.getenv = getenv
		return nil
	}
}

// WithDockerContext uses the Docker daemon of the named Docker context (docker's --context),
// from the context store of DOCKER_CONFIG or ~/.docker; "default" is DOCKER_HOST or the default
// socket. It makes the auto endpoint a Docker daemon, and conflicts with an explicit address.
func WithDockerContext(name string) Option {
	return func(o *options) error {
		if name == "" {
			return errors.New("empty Docker context name")
		}
		if o.dockerContext != "" {
			return errors.New("Docker context configured twice")
		}
		o.dockerContext = name
		return nil
	}
}

// New opens a builder on endpoint (see [ParseEndpoint]); it does not contact the endpoint (a
// builder plugin is started, though: its program runs until Close). An
// explicit address wins; otherwise (endpoint "" or "docker") the environment decides, as
// [Select] describes. [Builder.Selection] tells which endpoint was taken, and why.
func New(ctx context.Context, endpoint string, opts ...Option) (Builder, error) {
	sel, o, err := choose(endpoint, opts)
	if err != nil {
		return nil, err
	}
	switch sel.Kind {
	case KindDocker:
		return newDocker(ctx, sel, o)
	case KindPlugin:
		d, err := registeredPluginDriver()
		if err != nil {
			return nil, err
		}
		query, _ := url.ParseQuery(sel.ep.Query) // encoded by ParseEndpoint
		return d.Open(ctx, sel.ep.Address, query)
	default:
		return newBuildKit(ctx, sel, o)
	}
}

// Select decides which endpoint New would open, without opening it or contacting anything, so
// that a front end can refuse a bad choice before any work. The order:
//
//  1. an explicit address (the caller's: --builder, else the params' builder.endpoint);
//  2. a Docker context named by WithDockerContext (--context): that Docker daemon;
//  3. BUILDKIT_HOST, which means BuildKit (unless the endpoint is "docker");
//  4. the Docker daemon of DOCKER_HOST, else of the Docker context (DOCKER_CONTEXT, else the
//     current context of the Docker config), else the default socket.
func Select(endpoint string, opts ...Option) (Selection, error) {
	sel, _, err := choose(endpoint, opts)
	return sel.Selection, err
}

func choose(endpoint string, opts []Option) (selected, options, error) {
	o := options{getenv: os.Getenv}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return selected{}, o, fmt.Errorf("configuring builder: %w", err)
		}
	}
	ep, err := ParseEndpoint(endpoint)
	if err != nil {
		return selected{}, o, err
	}
	sel, err := selectEndpoint(ep, o)
	if err != nil {
		return selected{}, o, fmt.Errorf("choosing the build endpoint: %w", err)
	}
	if o.tls != nil {
		if scheme, _, _ := strings.Cut(sel.ep.Address, "://"); scheme != "tcp" {
			return selected{}, o, fmt.Errorf("configuring builder %s: TLS needs a tcp:// endpoint", sel.ep)
		}
	}
	return sel, o, nil
}

// normalizedRequest is a validated request with its derived values.
type normalizedRequest struct {
	Request
	repo      name.Repository
	platforms []string // normalized; empty means native
}

// prepare is the start of every Build: the request checked and normalized, the platforms to
// build (the request's, else the endpoint's native one) and the error context that names them.
func (b *baseBuilder) prepare(ctx context.Context, c *client.Client, req Request) (*normalizedRequest, []string, Error, error) {
	nr, err := b.validate(req)
	if err != nil {
		return nil, nil, Error{}, err
	}
	errInfo := Error{Repository: nr.repo.String(), Platforms: nr.platforms, Endpoint: b.endpoint.String()}
	if len(nr.platforms) > 0 {
		return nr, nr.platforms, errInfo, nil
	}
	native, _, _, err := workerPlatforms(ctx, c)
	if err != nil {
		return nil, nil, errInfo, errInfo.at(StepConnect, err)
	}
	errInfo.Platforms = []string{native}
	return nr, errInfo.Platforms, errInfo, nil
}

func (b *baseBuilder) validate(req Request) (*normalizedRequest, error) {
	repo, plats, err := CheckRequest(req)
	if err != nil {
		return nil, &Error{Step: StepValidate, Repository: req.Repository, Platforms: req.Platforms, Endpoint: b.endpoint.String(), Err: err}
	}
	return &normalizedRequest{Request: req, repo: repo, platforms: plats}, nil
}

// CheckRequest checks what every builder needs of a request: a repository without tag or
// digest, an existing context directory, an absolute Dockerfile path, named build arguments
// and labels, parseable platforms. It returns the repository and the platforms normalized
// (os/arch[/variant]) and de-duplicated, in order.
func CheckRequest(req Request) (name.Repository, []string, error) {
	if req.Repository == "" {
		return name.Repository{}, nil, errors.New("no repository")
	}
	var nameOpts []name.Option
	if req.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	repo, err := name.NewRepository(req.Repository, append(nameOpts, name.StrictValidation)...)
	if err != nil {
		return name.Repository{}, nil, fmt.Errorf("repository %q must be a repository name without tag or digest: %w", req.Repository, err)
	}
	fail := func(err error) (name.Repository, []string, error) { return name.Repository{}, nil, err }
	if req.ContextDir == "" {
		return fail(errors.New("no build context directory"))
	}
	if fi, err := os.Stat(req.ContextDir); err != nil {
		return fail(fmt.Errorf("build context: %w", err))
	} else if !fi.IsDir() {
		return fail(fmt.Errorf("build context %q is not a directory", req.ContextDir))
	}
	if !filepath.IsAbs(req.Dockerfile) {
		return fail(fmt.Errorf("dockerfile path %q is not absolute", req.Dockerfile))
	}
	if fi, err := os.Stat(req.Dockerfile); err != nil {
		return fail(fmt.Errorf("dockerfile: %w", err))
	} else if fi.IsDir() {
		return fail(fmt.Errorf("dockerfile %q is a directory", req.Dockerfile))
	}
	for k := range req.BuildArgs {
		if k == "" {
			return fail(errors.New("build argument with an empty name"))
		}
	}
	for k := range req.Labels {
		if k == "" {
			return fail(errors.New("label with an empty name"))
		}
	}
	plats, err := normalizePlatforms(req.Platforms)
	if err != nil {
		return fail(err)
	}
	return repo, plats, nil
}

// normalizePlatforms parses, normalizes and de-duplicates platforms, keeping their order.
func normalizePlatforms(in []string) ([]string, error) {
	var out []string
	for _, s := range in {
		p, err := platforms.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("platform %q: %w", s, err)
		}
		f := platforms.Format(platforms.Normalize(p))
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// baseBuilder holds what both drivers share.
type baseBuilder struct {
	endpoint Endpoint
	sel      Selection
	opts     options
}

func (b *baseBuilder) Selection() Selection { return b.sel }
