// Package params defines the build parameters: the one request shape that the CLI, the Ansible
// modules and the TOSCA templates all speak. The Go types here are the single source of truth:
// the JSON Schema in schema/build-params.schema.json is generated from them (go generate), input
// is validated against that schema before anything runs, and the docs are generated from it.
//
// The shape is SODALITE image-builder's, unchanged, so its users' payloads validate and build as
// they are; fields added for users of the other systems are optional.
package params

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"github.com/invopop/jsonschema"

	"github.com/imagebuilder/imagebuilder/internal/redact"
)

//go:generate go run ./genschema -o ../../schema/build-params.schema.json -readme ../../README.md

// BuildParams is one build request: where the code comes from, which images to make of it and
// where to push them.
type BuildParams struct {
	// Where the build context and the Dockerfile come from. Exactly one of git_repo, dockerfile
	// (optionally with build_context), tar or local.
	Source Source `json:"source"`
	// The images to build from the source and the registry to push them to.
	Target Target `json:"target"`
	// Which build engine to use and how. Optional: by default the BuildKit daemon at BUILDKIT_HOST
	// when that is set, else the Docker daemon of DOCKER_HOST or the current Docker context (else
	// the default socket).
	Builder *Builder `json:"builder,omitempty"`
	// Build secrets for every image, by id (an image's own secrets win by id). A Dockerfile
	// reads one with RUN --mount=type=secret,id=ID; it never enters the image, its history or
	// its labels.
	Secrets map[string]Secret `json:"secrets,omitempty"`
	// SSH agent sockets or keys forwarded to every image's build, as docker buildx build --ssh:
	// "default" (the agent at SSH_AUTH_SOCK) or "ID=PATH[,PATH...]" (agent sockets or private
	// key files); one forward may be given as a string (ssh: default). A Dockerfile uses one
	// with RUN --mount=type=ssh[,id=ID].
	SSH []string `json:"ssh,omitempty"`
}

// Secret is where a build secret comes from: exactly one of env, file or value.
type Secret struct {
	// Environment variable holding the secret, on the machine that runs the build.
	Env string `json:"env,omitempty"`
	// File holding the secret, on the machine that runs the build.
	File string `json:"file,omitempty"`
	// The secret itself. Never logged or returned.
	Value string `json:"value,omitempty" jsonschema:"writeOnly=true"`
}

// Source says where the build context and the Dockerfile come from.
type Source struct {
	// A git repository holding the Dockerfile and the build context.
	GitRepo *GitRepo `json:"git_repo,omitempty"`
	// A Dockerfile downloaded over http(s). Alone it is built with an empty context; with
	// build_context, the downloaded file is built in that context, even if the context has a
	// Dockerfile of its own.
	Dockerfile *DockerfileURL `json:"dockerfile,omitempty"`
	// A git repository used as the build context of the downloaded dockerfile. Needs dockerfile.
	BuildContext *BuildContext `json:"build_context,omitempty"`
	// A tarball (plain or gzip) holding the build context, from a local path or an http(s) URL.
	Tar *Tar `json:"tar,omitempty"`
	// A directory on the machine that runs the build, used in place as the build context.
	Local *Local `json:"local,omitempty"`
}

// GitRepo is a git repository holding the Dockerfile and the build context.
type GitRepo struct {
	// Clone URL: https://, http://, ssh://, git@host:path, file:// or a local path.
	URL string `json:"url"`
	// Branch, tag, full or abbreviated commit, or HEAD (the default branch).
	Version string `json:"version,omitempty" jsonschema:"default=HEAD"`
	// User name for http(s) authentication.
	Username string `json:"username,omitempty"`
	// Password or token for http(s) authentication. Never logged or returned.
	Password string `json:"password,omitempty" jsonschema:"writeOnly=true"`
	// Path of the Dockerfile, relative to the repository root.
	Dockerfile string `json:"dockerfile,omitempty" jsonschema:"default=Dockerfile"`
	// Build context directory, relative to the repository root.
	Workdir string `json:"workdir,omitempty" jsonschema:"default=."`
}

// DockerfileURL is a Dockerfile downloaded over http(s).
type DockerfileURL struct {
	// http(s) URL of the Dockerfile.
	URL string `json:"url"`
	// User name for basic authentication.
	Username string `json:"username,omitempty"`
	// Password or token for basic authentication. Never logged or returned.
	Password string `json:"password,omitempty" jsonschema:"writeOnly=true"`
}

// BuildContext is a git repository used as the build context of a downloaded Dockerfile.
type BuildContext struct {
	// Clone URL: https://, http://, ssh://, git@host:path, file:// or a local path.
	URL string `json:"url"`
	// Branch, tag, full or abbreviated commit, or HEAD (the default branch).
	Version string `json:"version,omitempty" jsonschema:"default=HEAD"`
	// Directory inside the repository to use as the build context; must stay inside it.
	Subdir string `json:"subdir,omitempty" jsonschema:"default=."`
	// User name for http(s) authentication.
	Username string `json:"username,omitempty"`
	// Password or token for http(s) authentication. Never logged or returned.
	Password string `json:"password,omitempty" jsonschema:"writeOnly=true"`
}

// Tar is a build-context tarball, plain or gzip-compressed. Exactly one of path or url.
type Tar struct {
	// Path of the tarball on the machine that runs the build.
	Path string `json:"path,omitempty"`
	// http(s) URL of the tarball.
	URL string `json:"url,omitempty"`
	// User name for basic authentication when downloading url.
	Username string `json:"username,omitempty"`
	// Password or token for basic authentication when downloading url. Never logged or returned.
	Password string `json:"password,omitempty" jsonschema:"writeOnly=true"`
	// Path of the Dockerfile, relative to the root of the extracted tarball.
	Dockerfile string `json:"dockerfile,omitempty" jsonschema:"default=Dockerfile"`
	// Build context directory, relative to the root of the extracted tarball.
	Workdir string `json:"workdir,omitempty" jsonschema:"default=."`
}

// Local is a directory on the machine that runs the build.
type Local struct {
	// Directory to use as the build root.
	Path string `json:"path"`
	// Path of the Dockerfile, relative to path.
	Dockerfile string `json:"dockerfile,omitempty" jsonschema:"default=Dockerfile"`
	// Build context directory, relative to path.
	Workdir string `json:"workdir,omitempty" jsonschema:"default=."`
}

// Target lists the images to build and the registry they are pushed to.
type Target struct {
	// The images to build. Each is built from the same source; variants differ by base image,
	// platforms, build args or target stage.
	Images []Image `json:"images"`
	// The registry every image is pushed to.
	Registry Registry `json:"registry"`
}

// Image is one image to build and push as REGISTRY/IMAGE:TAG.
type Image struct {
	// Repository path inside the registry, lowercase (for example team/app).
	Image string `json:"image"`
	// Tag to push.
	Tag string `json:"tag"`
	// Image variant: replaces the base image of the first stage that is built FROM an image
	// (not FROM another stage), without editing the Dockerfile.
	Base string `json:"base,omitempty"`
	// Replaces bases by key: a stage name, a stage index, or an image reference exactly as written
	// in a FROM. Every matching FROM is replaced; a key that matches nothing is an error.
	Bases map[string]string `json:"bases,omitempty"`
	// Platforms to build, as os/arch[/variant]. Several platforms publish one multi-platform
	// index. Default: the builder's native platform.
	Platforms []string `json:"platforms,omitempty"`
	// Extra tags pushed for the same image.
	Tags []string `json:"tags,omitempty"`
	// Build arguments (ARG values).
	BuildArgs map[string]string `json:"build_args,omitempty"`
	// Stage of a multi-stage Dockerfile to build (default: the last stage).
	Target string `json:"target,omitempty"`
	// Labels added to the image configuration.
	Labels map[string]string `json:"labels,omitempty"`
	// Build secrets of this image, by id; they add to (and by id replace) the request's secrets.
	Secrets map[string]Secret `json:"secrets,omitempty"`
	// SSH agent sockets or keys forwarded to this image's build, as the request's ssh; an id
	// given here replaces the request's entry with that id.
	SSH []string `json:"ssh,omitempty"`
}

// Registry is the registry the images are pushed to.
type Registry struct {
	// Registry host[:port], optionally followed by a namespace path (docker.io,
	// 127.0.0.1:5000, ghcr.io/team). The image reference is URL/IMAGE:TAG.
	URL string `json:"url"`
	// User name. Without username and password, credentials come from the Docker config and
	// its credential helpers.
	Username string `json:"username,omitempty"`
	// Password or token. Never logged or returned.
	Password string `json:"password,omitempty" jsonschema:"writeOnly=true"`
	// The registry is insecure: plain HTTP is allowed and TLS certificates are not verified,
	// as with Docker's insecure-registries. Loopback registries (127.0.0.0/8, localhost, ::1)
	// get plain HTTP without it, but their TLS is verified.
	Insecure bool `json:"insecure,omitempty"`
	// Repositories these credentials may write to (push, tag, delete): regular expressions over
	// the repository path under the registry host (team/app), each anchored at its start as
	// Zuul's re.match (end it with $ to name one repository). A build, promote or sweep that
	// would write anywhere else in this registry is refused before any work. Default: any.
	Repositories []string `json:"repositories,omitempty"`
	// Staged upload: push and tag the images only under this tag, one per final tag, leaving
	// the final tags alone until imagebuilder promote moves them. A Go text/template over .Tag
	// (the final tag) and .Vars (--var NAME=VALUE), e.g. change_{{.Vars.change}}_{{.Tag}}.
	StageTag string `json:"stage_tag,omitempty"`
}

// StageTags renders the stage tag of each final tag with the run's variables; nil without a
// stage_tag. A variable the template names and vars lacks is an error, and so is a result that
// is not a valid tag.
func (r Registry) StageTags(tags []string, vars map[string]string) ([]string, error) {
	if r.StageTag == "" {
		return nil, nil
	}
	tmpl, err := template.New("stage_tag").Option("missingkey=error").Parse(r.StageTag)
	if err != nil {
		return nil, fmt.Errorf("stage_tag: %w", err)
	}
	if vars == nil {
		vars = map[string]string{}
	}
	out := make([]string, len(tags))
	for i, t := range tags {
		var b strings.Builder
		if err := tmpl.Execute(&b, struct {
			Tag  string
			Vars map[string]string
		}{t, vars}); err != nil {
			return nil, fmt.Errorf("stage_tag for tag %s: %w (give it with --var NAME=VALUE)", t, err)
		}
		if !tagPattern.MatchString(b.String()) {
			return nil, fmt.Errorf("stage_tag for tag %s renders %q, which is not a tag", t, b.String())
		}
		out[i] = b.String()
	}
	return out, nil
}

var tagPattern = regexp.MustCompile(PatternTag)

// Builder selects the build engine and its options.
type Builder struct {
	// Build engine endpoint: docker (the Docker daemon of DOCKER_HOST or the Docker context),
	// docker+unix://, docker+tcp:// or docker+ssh:// (a Docker daemon at that address), or a
	// BuildKit address: unix://, tcp://, ssh://, docker-container://, podman-container://,
	// kube-pod://, or plugin:NAME[?KEY=VALUE&...] (the builder plugin imagebuilder-builder-NAME
	// with its settings).
	Endpoint string `json:"endpoint,omitempty"`
	// A pool of build engines, instead of one endpoint: each image builds on a free endpoint
	// that supports its platforms; an endpoint that dies gives its images back to the others.
	Endpoints []PoolEndpoint `json:"endpoints,omitempty"`
	// Do not use the build cache.
	NoCache bool `json:"no_cache,omitempty"`
	// Always pull base images, even when a local copy exists.
	Pull bool `json:"pull,omitempty"`
	// TLS for a tcp:// endpoint (a remote buildkitd or Docker daemon).
	TLS *BuilderTLS `json:"tls,omitempty"`
}

// PoolEndpoint is one build engine of a pool.
type PoolEndpoint struct {
	// Build engine endpoint, as builder.endpoint takes it.
	Endpoint string `json:"endpoint"`
	// Images it builds at the same time (default 1).
	Jobs int `json:"jobs,omitempty" jsonschema:"minimum=1"`
	// Platforms it builds (default: any); an image goes only to an endpoint that has all its
	// platforms.
	Platforms []string `json:"platforms,omitempty"`
}

// BuilderTLS is the TLS client configuration for a tcp:// build endpoint: files on the machine
// that runs the build.
type BuilderTLS struct {
	// CA certificate file to verify the endpoint (default: the system roots).
	CACert string `json:"ca_cert,omitempty"`
	// Client certificate file (with key).
	Cert string `json:"cert,omitempty"`
	// Client key file (with cert).
	Key string `json:"key,omitempty"`
	// Name to verify in the endpoint's certificate (default: its host).
	ServerName string `json:"server_name,omitempty"`
}

// JSONSchemaExtend: a client certificate and its key go together.
func (BuilderTLS) JSONSchemaExtend(s *jsonschema.Schema) {
	s.DependentRequired = map[string][]string{"cert": {"key"}, "key": {"cert"}}
}

// Default values, as documented in the schema.
const (
	DefaultVersion    = "HEAD"
	DefaultDockerfile = "Dockerfile"
	DefaultWorkdir    = "."
)

// WithDefaults returns a copy of p with every documented default filled in.
func (p BuildParams) WithDefaults() BuildParams {
	p.Source = p.Source.WithDefaults()
	return p
}

// WithDefaults returns a copy of s with every documented default filled in.
func (s Source) WithDefaults() Source {
	if g := s.GitRepo; g != nil {
		c := *g
		c.Version = or(c.Version, DefaultVersion)
		c.Dockerfile = or(c.Dockerfile, DefaultDockerfile)
		c.Workdir = or(c.Workdir, DefaultWorkdir)
		s.GitRepo = &c
	}
	if b := s.BuildContext; b != nil {
		c := *b
		c.Version = or(c.Version, DefaultVersion)
		c.Subdir = or(c.Subdir, DefaultWorkdir)
		s.BuildContext = &c
	}
	if t := s.Tar; t != nil {
		c := *t
		c.Dockerfile = or(c.Dockerfile, DefaultDockerfile)
		c.Workdir = or(c.Workdir, DefaultWorkdir)
		s.Tar = &c
	}
	if l := s.Local; l != nil {
		c := *l
		c.Dockerfile = or(c.Dockerfile, DefaultDockerfile)
		c.Workdir = or(c.Workdir, DefaultWorkdir)
		s.Local = &c
	}
	return s
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Source kinds, as Kind names them.
const (
	KindGit        = "git"
	KindDockerfile = "dockerfile"
	KindTar        = "tar"
	KindLocal      = "local"
)

// sourceKinds are the properties of Source of which exactly one must be present, with the
// kind each stands for, in schema order.
var sourceKinds = []struct{ property, kind string }{
	{"git_repo", KindGit}, {"dockerfile", KindDockerfile}, {"tar", KindTar}, {"local", KindLocal},
}

// Kind names the source kind: git, dockerfile, tar or local; "" unless exactly one is set.
func (s Source) Kind() string {
	has := s.has()
	var kind string
	for _, k := range sourceKinds {
		if has(k.property) {
			if kind != "" {
				return ""
			}
			kind = k.kind
		}
	}
	return kind
}

// Check applies the source rules (exactly one kind; build_context only with dockerfile; a tar
// from exactly one of path or url, credentials only with url) and explains the first one
// broken, or returns nil.
func (s Source) Check() error {
	if msg := sourceRule(s.has()); msg != "" {
		return errors.New(msg)
	}
	if t := s.Tar; t != nil {
		set := map[string]bool{"path": t.Path != "", "url": t.URL != "", "username": t.Username != "", "password": t.Password != ""}
		if msg := tarRule(func(p string) bool { return set[p] }); msg != "" {
			return errors.New("tar: " + msg)
		}
	}
	return nil
}

// has reports which source properties are set.
func (s Source) has() func(property string) bool {
	return func(property string) bool {
		switch property {
		case "git_repo":
			return s.GitRepo != nil
		case "dockerfile":
			return s.Dockerfile != nil
		case "build_context":
			return s.BuildContext != nil
		case "tar":
			return s.Tar != nil
		case "local":
			return s.Local != nil
		}
		return false
	}
}

// sourceRule explains a broken source rule, given which properties are present, or returns "".
// Validation (on generic data) and Source.Check (on the types) share it.
func sourceRule(has func(property string) bool) string {
	var present []string
	for _, k := range sourceKinds {
		if has(k.property) {
			present = append(present, k.property)
		}
	}
	ctx := has("build_context")
	const want = "set exactly one of git_repo, dockerfile (optionally with build_context), tar or local"
	switch {
	case len(present) == 0 && ctx:
		return "build_context needs dockerfile: the Dockerfile URL to build in that context"
	case len(present) == 0:
		return "no source given: " + want
	case len(present) > 1:
		return strings.Join(present, " and ") + " cannot be combined: " + want
	case ctx && present[0] != "dockerfile":
		return present[0] + " cannot be combined with build_context: build_context is the context of a dockerfile source"
	}
	return ""
}

// tarRule explains a broken tar rule (exactly one of path or url; credentials only with url),
// given which properties are present, or returns "".
func tarRule(has func(property string) bool) string {
	switch p, u := has("path"), has("url"); {
	case p && u:
		return "path and url cannot be combined: set exactly one of them"
	case !p && !u:
		return "missing path or url: set exactly one of them"
	case p && (has("username") || has("password")):
		return "username and password apply only to url"
	}
	return ""
}

// secretSources are the properties of Secret of which exactly one must be present.
var secretSources = []string{"env", "file", "value"}

// ContextPath names the build context inside the source: its directory relative to the
// source's root (the local directory's path joined with its workdir for a local source).
// Defaults must have been applied.
func (s Source) ContextPath() string {
	switch {
	case s.GitRepo != nil:
		return s.GitRepo.Workdir
	case s.BuildContext != nil:
		return s.BuildContext.Subdir
	case s.Tar != nil:
		return s.Tar.Workdir
	case s.Local != nil:
		return s.Local.Path + "\x00" + s.Local.Workdir
	}
	return ""
}

// Ref is the reference an image is pushed to: REGISTRY/IMAGE:TAG.
func (t Target) Ref(img Image) string { return t.RefTag(img, img.Tag) }

// RefTag is the reference of img under another tag.
func (t Target) RefTag(img Image, tag string) string {
	return t.Registry.Repository(img.Image) + ":" + tag
}

// Repository is the repository of an image in this registry: URL/IMAGE.
func (r Registry) Repository(image string) string {
	url := r.URL
	for len(url) > 0 && url[len(url)-1] == '/' {
		url = url[:len(url)-1]
	}
	return url + "/" + image
}

// AllTags is the image's tag followed by its extra tags, without duplicates.
func (img Image) AllTags() []string {
	tags := []string{img.Tag}
	seen := map[string]bool{img.Tag: true}
	for _, t := range img.Tags {
		if !seen[t] {
			seen[t] = true
			tags = append(tags, t)
		}
	}
	return tags
}

// BuildSecrets are the build secrets of img: the request's, with the image's own replacing
// them by id.
func (p BuildParams) BuildSecrets(img Image) map[string]Secret {
	if len(p.Secrets) == 0 && len(img.Secrets) == 0 {
		return nil
	}
	out := make(map[string]Secret, len(p.Secrets)+len(img.Secrets))
	for id, s := range p.Secrets {
		out[id] = s
	}
	for id, s := range img.Secrets {
		out[id] = s
	}
	return out
}

// SSHForwards are the ssh forwards of img: the request's, with the image's own replacing
// them by id, in the order given.
func (p BuildParams) SSHForwards(img Image) []string {
	var out []string
	index := map[string]int{}
	for _, spec := range append(append([]string{}, p.SSH...), img.SSH...) {
		id, _, _ := strings.Cut(spec, "=")
		if i, ok := index[id]; ok {
			out[i] = spec
			continue
		}
		index[id] = len(out)
		out = append(out, spec)
	}
	return out
}

// AddSecrets makes r mask every secret of p: passwords and tokens (with their Basic
// authorization forms), inline build secret values, and the credentials that URLs carry in
// their user information or query.
func (p BuildParams) AddSecrets(r *redact.Redactor) {
	s := p.Source
	if g := s.GitRepo; g != nil {
		r.AddBasic(g.Username, g.Password)
		r.AddURL(g.URL)
	}
	if d := s.Dockerfile; d != nil {
		r.AddBasic(d.Username, d.Password)
		r.AddURL(d.URL)
	}
	if b := s.BuildContext; b != nil {
		r.AddBasic(b.Username, b.Password)
		r.AddURL(b.URL)
	}
	if t := s.Tar; t != nil {
		r.AddBasic(t.Username, t.Password)
		r.AddURL(t.URL)
	}
	reg := p.Target.Registry
	r.AddBasic(reg.Username, reg.Password)
	r.AddURL(reg.URL)
	for _, sec := range p.Secrets {
		r.Add(sec.Value)
	}
	for _, img := range p.Target.Images {
		for _, sec := range img.Secrets {
			r.Add(sec.Value)
		}
	}
}
