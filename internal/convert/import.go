package convert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"

	yaml "go.yaml.in/yaml/v2"

	"github.com/imagebuilder/imagebuilder/internal/family"
	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/schemacheck"
)

// Importers: the formats Import reads.
const (
	FromCORD = "cord"
	FromZuul = "zuul"
)

// ImportOptions say where the repositories an imported file names are, and where the images go.
type ImportOptions struct {
	// RepoRoot is the directory holding the repositories by name: each becomes a local source
	// RepoRoot/NAME (written as given; a relative one is relative to the family file).
	RepoRoot string
	// RepoURL is a Go template of a git URL over .Repo (https://gerrit.opencord.org/{{.Repo}}):
	// each repository becomes a git source. Exclusive with RepoRoot.
	RepoURL string
	// Registry is the registry URL written into the family file (default docker.io, where
	// both CORD and Zuul's jobs push).
	Registry string
}

// DefaultImportRegistry is the registry of an imported family unless ImportOptions says.
const DefaultImportRegistry = "docker.io"

// Import reads a CORD docker_images.yml (from "cord") or a Zuul docker_images job variable
// (from "zuul") and returns the family file it describes, validated, in format to (YAML when
// "").
func Import(from string, data []byte, o ImportOptions, to params.Format) ([]byte, error) {
	var f *family.File
	var err error
	switch from {
	case FromCORD:
		f, err = ImportCORD(data, o)
	case FromZuul:
		f, err = ImportZuul(data, o)
	default:
		return nil, fmt.Errorf("unknown format %q (want cord or zuul)", from)
	}
	if err != nil {
		return nil, err
	}
	js, err := marshalJSON(f)
	if err != nil {
		return nil, err
	}
	// What is written must load: the importers are held to the schema like any user.
	if _, err := family.Load(js); err != nil {
		return nil, fmt.Errorf("the imported family file is not valid:\n%w", err)
	}
	switch to {
	case params.JSON:
		return js, nil
	case params.YAML, "":
		// In the order of the Go types (registry first, each image's name first), not sorted:
		// the file is for people to read and edit.
		var ordered yaml.MapSlice
		if err := yaml.Unmarshal(js, &ordered); err != nil {
			return nil, fmt.Errorf("converting to YAML: %w", err)
		}
		y, err := yaml.Marshal(ordered)
		if err != nil {
			return nil, fmt.Errorf("converting to YAML: %w", err)
		}
		return y, nil
	}
	return nil, fmt.Errorf("unknown output format %q (want json or yaml)", to)
}

// decodeInto decodes a JSON or YAML document into v (unknown keys are ignored: the formats
// have keys imagebuilder has no use for).
func decodeInto(data []byte, v any) error {
	doc, _, err := params.Decode(data)
	if err != nil {
		return err
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	if err := dec.Decode(v); err != nil {
		return schemacheck.Invalid("", "%v", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// repoSources makes the named sources of an imported file: one per repository, a local
// directory under RepoRoot or a git URL from RepoURL.
type repoSources struct {
	o       ImportOptions
	tmpl    *template.Template
	sources map[string]params.Source
	names   map[string]string // repository -> source name
}

func newRepoSources(o ImportOptions, defaultRoot string) (*repoSources, error) {
	if o.RepoRoot != "" && o.RepoURL != "" {
		return nil, schemacheck.Invalid("", "--repo-root and --repo-url cannot be combined: repositories are local directories or git URLs")
	}
	if o.RepoRoot == "" && o.RepoURL == "" {
		o.RepoRoot = defaultRoot
	}
	r := &repoSources{o: o, sources: map[string]params.Source{}, names: map[string]string{}}
	if o.RepoURL != "" {
		t, err := template.New("repo-url").Option("missingkey=error").Parse(o.RepoURL)
		if err != nil {
			return nil, schemacheck.Invalid("", "--repo-url: %v", err)
		}
		r.tmpl = t
	}
	return r, nil
}

var notSourceName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// name returns the source name of a repository, making its source on first use.
func (r *repoSources) name(repo string) (string, error) {
	if n, ok := r.names[repo]; ok {
		return n, nil
	}
	n := strings.Trim(notSourceName.ReplaceAllString(repo, "-"), "-._")
	if n == "" {
		return "", fmt.Errorf("repository %q has no usable name", repo)
	}
	for base, i := n, 2; ; i++ {
		if _, taken := r.sources[n]; !taken {
			break
		}
		n = fmt.Sprintf("%s-%d", base, i)
	}
	var src params.Source
	if r.tmpl != nil {
		var b strings.Builder
		if err := r.tmpl.Execute(&b, map[string]string{"Repo": repo}); err != nil {
			return "", fmt.Errorf("--repo-url for %q: %v", repo, err)
		}
		src.GitRepo = &params.GitRepo{URL: b.String()}
	} else {
		src.Local = &params.Local{Path: filepath.ToSlash(filepath.Join(r.o.RepoRoot, filepath.FromSlash(repo)))}
	}
	r.sources[n], r.names[repo] = src, n
	return n, nil
}

func registry(o ImportOptions) params.Registry {
	if o.Registry != "" {
		return params.Registry{URL: o.Registry}
	}
	return params.Registry{URL: DefaultImportRegistry}
}

// cleanRel cleans a relative path for the family file ("" for ".").
func cleanRel(p string) string {
	if p == "" {
		return ""
	}
	c := path.Clean(p)
	if c == "." {
		return ""
	}
	return c
}

// cordFile is CORD's docker_images.yml.
type cordFile struct {
	BuildableImages []cordImage `json:"buildable_images"`
	PullOnlyImages  []string    `json:"pull_only_images"`
}

type cordImage struct {
	Name       string          `json:"name"`
	Repo       string          `json:"repo"`
	Path       string          `json:"path"`
	Dockerfile string          `json:"dockerfile"`
	Components []cordComponent `json:"components"`
}

type cordComponent struct {
	Repo string `json:"repo"`
	Path string `json:"path"`
	Dest string `json:"dest"`
}

// ImportCORD reads CORD's docker_images.yml: each of buildable_images becomes an image (name,
// its repo as its source, path as its context, dockerfile inside it, components copied into
// the context at dest), pull_only_images the family's pull list, and every image gets CORD's
// candidate tag. Repositories are local directories under RepoRoot (default: beside the
// family file) or git URLs from RepoURL.
func ImportCORD(data []byte, o ImportOptions) (*family.File, error) {
	var in cordFile
	if err := decodeInto(data, &in); err != nil {
		return nil, err
	}
	if len(in.BuildableImages) == 0 && len(in.PullOnlyImages) == 0 {
		return nil, schemacheck.Invalid("", "no buildable_images and no pull_only_images: is this CORD's docker_images.yml?")
	}
	repos, err := newRepoSources(o, ".")
	if err != nil {
		return nil, err
	}
	f := &family.File{Registry: registry(o), Tag: "candidate", Pull: in.PullOnlyImages}
	for i, ci := range in.BuildableImages {
		where := fmt.Sprintf("/buildable_images/%d", i)
		if ci.Name == "" || ci.Repo == "" {
			return nil, schemacheck.Invalid(where, "name and repo are required")
		}
		name, tag, _ := strings.Cut(ci.Name, ":")
		if tag != "" {
			return nil, schemacheck.Invalid(where+"/name", "%q: CORD builds images without a tag in their name", ci.Name)
		}
		src, err := repos.name(ci.Repo)
		if err != nil {
			return nil, schemacheck.Invalid(where+"/repo", "%v", err)
		}
		img := family.ImageSpec{
			Name: name, Source: &family.SourceRef{Name: src},
			Context: cleanRel(ci.Path), Dockerfile: cleanRel(ci.Dockerfile),
		}
		if img.Dockerfile == family.DefaultDockerfile {
			img.Dockerfile = ""
		}
		for j, c := range ci.Components {
			if c.Repo == "" || c.Dest == "" {
				return nil, schemacheck.Invalid(fmt.Sprintf("%s/components/%d", where, j), "repo and dest are required")
			}
			cs, err := repos.name(c.Repo)
			if err != nil {
				return nil, schemacheck.Invalid(fmt.Sprintf("%s/components/%d/repo", where, j), "%v", err)
			}
			img.Components = append(img.Components, family.Component{Source: cs, Path: cleanRel(c.Path), Dest: path.Clean(c.Dest)})
		}
		f.Images = append(f.Images, img)
	}
	f.Sources = repos.sources
	return f, nil
}

// zuulImage is one entry of Zuul's docker_images job variable (zuul-jobs' build-docker-image
// and build-container-image roles).
type zuulImage struct {
	Context    string   `json:"context"`
	Dockerfile string   `json:"dockerfile"`
	Repository string   `json:"repository"`
	Path       string   `json:"path"`
	Target     string   `json:"target"`
	Tags       []string `json:"tags"`
	BuildArgs  []string `json:"build_args"`
	Siblings   []string `json:"siblings"`
	Arch       []string `json:"arch"`
}

// zuulImages finds the docker_images variable in a document: the list itself, a mapping of
// job variables holding it, or a Zuul configuration (a list of {job: {vars: ...}}), whose jobs'
// lists are joined (jobs usually share one list through a YAML anchor; repeats collapse).
func zuulImages(data []byte) ([]zuulImage, error) {
	var generic any
	if err := decodeInto(data, &generic); err != nil {
		return nil, err
	}
	var lists []any
	switch v := generic.(type) {
	case map[string]any:
		if l, ok := v["docker_images"]; ok {
			lists = append(lists, l)
		} else if vars, ok := v["vars"].(map[string]any); ok && vars["docker_images"] != nil {
			lists = append(lists, vars["docker_images"])
		}
	case []any:
		isConfig := false
		for _, item := range v {
			m, _ := item.(map[string]any)
			job, _ := m["job"].(map[string]any)
			if job == nil {
				continue
			}
			isConfig = true
			if vars, _ := job["vars"].(map[string]any); vars != nil && vars["docker_images"] != nil {
				lists = append(lists, vars["docker_images"])
			}
		}
		if !isConfig {
			lists = append(lists, v)
		}
	}
	if len(lists) == 0 {
		return nil, schemacheck.Invalid("", "no docker_images found: give the variable's list, a mapping holding docker_images, or a Zuul configuration whose jobs set it in vars")
	}
	var out []zuulImage
	seen := map[string]zuulImage{}
	for _, l := range lists {
		js, err := json.Marshal(l)
		if err != nil {
			return nil, err
		}
		var imgs []zuulImage
		if err := json.Unmarshal(js, &imgs); err != nil {
			return nil, schemacheck.Invalid("", "reading docker_images: %v", strings.TrimPrefix(err.Error(), "json: "))
		}
		for _, img := range imgs {
			if prev, ok := seen[img.Repository]; ok {
				if !equalZuul(prev, img) {
					return nil, schemacheck.Invalid("", "docker_images: repository %q is described twice, differently", img.Repository)
				}
				continue
			}
			seen[img.Repository] = img
			out = append(out, img)
		}
	}
	return out, nil
}

func equalZuul(a, b zuulImage) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// ZuulProject is the name of the source that is the project's own tree.
const ZuulProject = "project"

// ImportZuul reads Zuul's docker_images job variable. The project's tree is the source
// "project", the directory of the family file (write it at the project's root, Zuul's
// zuul_work_dir); each item becomes an image: repository its name, context (joined with path,
// which zuul-jobs passes to docker build from the context) its context, dockerfile relative to
// that, target, tags (the first is the tag; Zuul's default latest), build_args (NAME=VALUE),
// arch its platforms, and siblings components copied to .zuul-siblings/NAME with the
// ZUUL_SIBLINGS build arg, as zuul-jobs does. Siblings are local directories under RepoRoot
// (default: the directory above the project) or git URLs from RepoURL.
func ImportZuul(data []byte, o ImportOptions) (*family.File, error) {
	items, err := zuulImages(data)
	if err != nil {
		return nil, err
	}
	repos, err := newRepoSources(o, "..")
	if err != nil {
		return nil, err
	}
	f := &family.File{
		Registry: registry(o),
		Sources:  map[string]params.Source{ZuulProject: {Local: &params.Local{Path: "."}}},
	}
	repos.sources[ZuulProject] = f.Sources[ZuulProject]
	for i, zi := range items {
		where := fmt.Sprintf("docker_images[%d]", i)
		if zi.Repository == "" {
			return nil, schemacheck.Invalid("", "%s: repository is required", where)
		}
		ctx := path.Clean(or(zi.Context, "."))
		buildDir := path.Join(ctx, or(zi.Path, "."))
		dfFromCtx := path.Join(ctx, or(zi.Dockerfile, family.DefaultDockerfile))
		if buildDir == ".." || strings.HasPrefix(buildDir, "../") {
			return nil, schemacheck.Invalid("", "%s: context %q with path %q leaves the project", where, zi.Context, zi.Path)
		}
		df := dfFromCtx
		if buildDir != "." {
			rel, ok := strings.CutPrefix(dfFromCtx, buildDir+"/")
			if !ok {
				return nil, schemacheck.Invalid("", "%s: the Dockerfile %s lies outside the directory docker build is given (%s): imagebuilder needs it inside", where, dfFromCtx, buildDir)
			}
			df = rel
		}
		img := family.ImageSpec{
			Name: zi.Repository, Source: &family.SourceRef{Name: ZuulProject},
			Context: cleanRel(buildDir), Dockerfile: cleanRel(df),
			Target: zi.Target, Platforms: zi.Arch,
		}
		if img.Dockerfile == family.DefaultDockerfile {
			img.Dockerfile = ""
		}
		tags := zi.Tags
		if len(tags) == 0 {
			tags = []string{"latest"}
		}
		img.Tag, img.Tags = tags[0], slices.Clone(tags[1:])
		for j, a := range zi.BuildArgs {
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				return nil, schemacheck.Invalid("", "%s.build_args[%d]: %q has no value: give NAME=VALUE", where, j, a)
			}
			if img.BuildArgs == nil {
				img.BuildArgs = map[string]string{}
			}
			img.BuildArgs[k] = v
		}
		for _, s := range zi.Siblings {
			src, err := repos.name(s)
			if err != nil {
				return nil, schemacheck.Invalid("", "%s: sibling %v", where, err)
			}
			img.Components = append(img.Components, family.Component{Source: src, Dest: path.Join(".zuul-siblings", s)})
		}
		if len(zi.Siblings) > 0 {
			if img.BuildArgs == nil {
				img.BuildArgs = map[string]string{}
			}
			img.BuildArgs["ZUUL_SIBLINGS"] = strings.Join(zi.Siblings, " ")
		}
		f.Images = append(f.Images, img)
	}
	f.Sources = repos.sources
	return f, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
