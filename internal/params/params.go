// Package params defines the build parameters: the one request shape that the CLI, the Ansible
// modules and the TOSCA templates all speak. The Go types here are the single source of truth:
// the JSON Schema in schema/build-params.schema.json is generated from them (go generate), input
// is validated against that schema before anything runs, and the docs are generated from it.
//
// The shape is SODALITE image-builder's, unchanged, so its users' payloads validate and build as
// they are; fields added for users of the other systems are optional.
package params

import "github.com/invopop/jsonschema"

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
	// Use plain HTTP. Loopback registries (127.0.0.0/8, localhost, ::1) use plain HTTP anyway, as
	// Docker does.
	Insecure bool `json:"insecure,omitempty"`
}

// Builder selects the build engine and its options.
type Builder struct {
	// Build engine endpoint: docker (the Docker daemon of DOCKER_HOST or the Docker context),
	// docker+unix://, docker+tcp:// or docker+ssh:// (a Docker daemon at that address), or a
	// BuildKit address: unix://, tcp://, ssh://, docker-container://, podman-container://,
	// kube-pod://.
	Endpoint string `json:"endpoint,omitempty"`
	// Do not use the build cache.
	NoCache bool `json:"no_cache,omitempty"`
	// Always pull base images, even when a local copy exists.
	Pull bool `json:"pull,omitempty"`
	// TLS for a tcp:// endpoint (a remote buildkitd or Docker daemon).
	TLS *BuilderTLS `json:"tls,omitempty"`
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
	s := &p.Source
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
	return p
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Kind names the source kind: git, dockerfile, tar or local ("" when none is set).
func (s Source) Kind() string {
	switch {
	case s.GitRepo != nil:
		return "git"
	case s.Dockerfile != nil:
		return "dockerfile"
	case s.Tar != nil:
		return "tar"
	case s.Local != nil:
		return "local"
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

// Secrets lists every secret value in p (passwords and tokens), for masking.
func (p BuildParams) Secrets() []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s)
		}
	}
	if g := p.Source.GitRepo; g != nil {
		add(g.Password)
	}
	if d := p.Source.Dockerfile; d != nil {
		add(d.Password)
	}
	if b := p.Source.BuildContext; b != nil {
		add(b.Password)
	}
	if t := p.Source.Tar; t != nil {
		add(t.Password)
	}
	add(p.Target.Registry.Password)
	return out
}
