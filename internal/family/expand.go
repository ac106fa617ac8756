package family

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/distribution/reference"
	"github.com/go-git/go-git/v5"

	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/schemacheck"
)

// ExpandOptions are what Expand takes from the run rather than the file.
type ExpandOptions struct {
	// Vars override the values of the file's variables (--var NAME=VALUE); a name the file
	// does not declare is an error.
	Vars map[string]string
	// Now is the time of the run, for .Date (default: the current time).
	Now time.Time
	// Getenv reads the environment for proxy_from_env (default os.LookupEnv).
	Getenv func(string) (string, bool)
	// Git describes the checkout for .Git in the tag templates; nil reads the git checkout
	// holding the file's directory (Dir), if any.
	Git *Git
}

// Git is the .Git data of the tag templates.
type Git struct {
	// Branch is the checked-out branch's short name ("" when HEAD is detached).
	Branch string
	// Commit is the 40-hex commit; ShortCommit its first 7 characters.
	Commit, ShortCommit string
}

// Family is a file expanded for one run: images_dir discovered, disabled images dropped, the
// globals applied to every image (platforms, tags, variables, build args including proxies,
// secrets, ssh), tags rendered, inline sources named.
type Family struct {
	Registry params.Registry
	// Namespace is the file's namespace (already part of each image's Repository).
	Namespace string
	Builder   *params.Builder
	Secrets   map[string]params.Secret
	// Sources are the sources the images and their components use, by name: an inline source
	// is named InlinePrefix + the image's name, images_dir's is ImagesDirSource. Relative local
	// paths (local.path, tar.path, a git url that is a relative directory) are absolute.
	Sources map[string]params.Source
	// Images are the enabled images: the file's images in file order (an entry naming an
	// images_dir image in its place, merged with it), then the other images_dir images sorted by
	// name.
	Images []Image
	// Pull are the external references to resolve to digests and record.
	Pull []string
	// Variables are the file's variables with the run's overrides: the data of *.tmpl
	// Dockerfiles.
	Variables map[string]string
	// Header and Footer are the Dockerfile fragments Prepare inserts.
	Header, Footer string
	// Dir is the file's directory.
	Dir string
}

// Image is one image of an expanded family: everything it needs to be built and pushed.
type Image struct {
	Name string
	// Repository is REGISTRY/NAMESPACE/NAME, as params.Registry.Repository builds it.
	Repository string
	// Tag is the image's tag; Tags are every tag, Tag first, without duplicates.
	Tag  string
	Tags []string
	// Source names the source in Family.Sources; Context is the context directory inside it
	// (relative to its workdir); Dockerfile is the Dockerfile's path inside the context ("" for
	// a source that downloads its Dockerfile).
	Source, Context, Dockerfile string
	BuildArgs, Labels           map[string]string
	Target                      string
	Platforms                   []string
	Components                  []Component
	Bases                       map[string]string
	Secrets                     map[string]params.Secret
	SSH                         []string
	// Pointer is the JSON pointer of the image's entry ("/images/3"), or the images_dir
	// directory it was found in ("images_dir/keystone"), for messages.
	Pointer string
}

// Ref is the image's reference under its tag: REPOSITORY:TAG.
func (img Image) Ref() string { return img.Repository + ":" + img.Tag }

// Refs are the image's references, one per tag, the tag's first.
func (img Image) Refs() []string {
	out := make([]string, len(img.Tags))
	for i, t := range img.Tags {
		out[i] = img.Repository + ":" + t
	}
	return out
}

// ProxyVars are the environment variables proxy_from_env passes as build args, as Kolla does.
var ProxyVars = []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy"}

// Expand expands the file for one run. Errors wrap params.ErrInvalid when the file (or the
// images_dir it names, or opts.Vars) is at fault, and name the image and its pointer.
func (f *File) Expand(opts ExpandOptions) (*Family, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Getenv == nil {
		opts.Getenv = os.LookupEnv
	}
	fam := &Family{
		Registry: f.Registry, Namespace: f.Namespace, Builder: f.Builder, Secrets: f.Secrets,
		Sources: map[string]params.Source{}, Pull: slices.Clone(f.Pull),
		Variables: maps.Clone(f.Variables), Header: f.Header, Footer: f.Footer, Dir: f.Dir,
	}
	if fam.Variables == nil {
		fam.Variables = map[string]string{}
	}
	var errs []schemacheck.FieldError
	fail := func(ptr, format string, args ...any) {
		errs = append(errs, schemacheck.FieldError{Pointer: ptr, Message: fmt.Sprintf(format, args...)})
	}
	for _, k := range slices.Sorted(maps.Keys(opts.Vars)) {
		if _, ok := fam.Variables[k]; !ok {
			fail("/variables", "--var %s: the file declares no such variable%s", k, declared(f.Variables))
			continue
		}
		fam.Variables[k] = opts.Vars[k]
	}

	// The images: explicit entries, merged with the images_dir image of their name.
	found, order, err := f.discover()
	if err != nil {
		return nil, err
	}
	type entry struct {
		img     ImageSpec
		pointer string
	}
	var entries []entry
	seen := map[string]bool{}
	for i, img := range f.Images {
		ptr := fmt.Sprintf("/images/%d", i)
		if d, ok := found[img.Name]; ok {
			img = merge(d, img).file
		}
		seen[img.Name] = true
		entries = append(entries, entry{img, ptr})
	}
	for _, name := range order {
		if !seen[name] {
			d := found[name]
			entries = append(entries, entry{d.file, d.pointer})
		}
	}

	data := map[string]any{}
	for k, v := range fam.Variables {
		data[k] = v
	}
	data["Date"] = opts.Now.UTC().Format("20060102")
	git := opts.Git
	if git == nil {
		git = gitOf(f.Dir)
	}
	data["Git"] = *git
	render := func(ptr, text string) string {
		if !strings.Contains(text, "{{") {
			return text
		}
		if strings.Contains(text, ".Git") && git.Commit == "" {
			fail(ptr, "%q uses .Git, but the family file is not in a git checkout", text)
			return ""
		}
		out, err := renderTemplate(text, data)
		if err != nil {
			fail(ptr, "rendering %q: %v", text, err)
			return ""
		}
		return out
	}
	globalTag := render("/tag", or(f.Tag, DefaultTag))
	var globalTags []string
	for i, t := range f.Tags {
		globalTags = append(globalTags, render(fmt.Sprintf("/tags/%d", i), t))
	}
	proxy := map[string]string{}
	if f.ProxyFromEnv {
		for _, k := range ProxyVars {
			if v, ok := opts.Getenv(k); ok && v != "" {
				proxy[k] = v
			}
		}
	}

	refs := map[string]string{}
	for _, e := range entries {
		img := e.img
		if img.Enabled != nil && !*img.Enabled {
			continue
		}
		ptr := e.pointer
		out := Image{
			Name: img.Name, Repository: f.Registry.Repository(joinRepo(f.Namespace, img.Name)),
			Context: or(img.Context, DefaultContext), Dockerfile: img.Dockerfile,
			Target: img.Target, Labels: img.Labels, Components: img.Components, Bases: img.Bases,
			Platforms: img.Platforms, Pointer: ptr,
		}
		if len(out.Platforms) == 0 {
			out.Platforms = slices.Clone(f.Platforms)
		}
		// Source.
		switch s := img.Source; {
		case s != nil && s.Inline != nil:
			out.Source = InlinePrefix + img.Name
			fam.Sources[out.Source] = f.absSource(*s.Inline)
		case s != nil:
			out.Source = s.Name
		case len(f.Sources) == 1:
			out.Source = slices.Collect(maps.Keys(f.Sources))[0]
		default:
			fail(ptr, "image %q has no source: set source, or put it under images_dir", img.Name)
			continue
		}
		if out.Source == ImagesDirSource {
			fam.Sources[ImagesDirSource] = params.Source{Local: &params.Local{Path: f.abs(f.ImagesDir)}}
		} else if _, ok := fam.Sources[out.Source]; !ok {
			src, ok := f.Sources[out.Source]
			if !ok {
				fail(ptr+"/source", "no source named %q%s", out.Source, among(f.Sources))
				continue
			}
			fam.Sources[out.Source] = f.absSource(src)
		}
		if out.Dockerfile == "" && fam.Sources[out.Source].Dockerfile == nil {
			out.Dockerfile = DefaultDockerfile
		}
		if fam.Sources[out.Source].Dockerfile != nil && img.Dockerfile != "" {
			fail(ptr+"/dockerfile", "image %q: its source downloads its Dockerfile; dockerfile does not apply", img.Name)
		}
		for _, c := range img.Components {
			if src, ok := f.Sources[c.Source]; ok {
				fam.Sources[c.Source] = f.absSource(src)
			}
		}
		// Tags.
		out.Tag = globalTag
		if img.Tag != "" {
			out.Tag = render(ptr+"/tag", img.Tag)
		}
		all := append([]string{out.Tag}, globalTags...)
		for i, t := range img.Tags {
			all = append(all, render(fmt.Sprintf("%s/tags/%d", ptr, i), t))
		}
		out.Tag = ""
		for _, t := range all {
			if t == "" || slices.Contains(out.Tags, t) {
				continue
			}
			if !tagPattern.MatchString(t) {
				fail(ptr, "image %q: tag %q (rendered) is not %s", img.Name, t, params.PatternHints[params.PatternTag])
				continue
			}
			ref := out.Repository + ":" + t
			if _, err := reference.ParseNormalizedNamed(ref); err != nil {
				fail(ptr, "image %q: %q is not a valid image reference: %v", img.Name, ref, err)
				continue
			}
			if other, dup := refs[ref]; dup {
				fail(ptr, "image %q: %q is also pushed by %s", img.Name, ref, other)
				continue
			}
			refs[ref] = ptr
			out.Tags = append(out.Tags, t)
		}
		if len(out.Tags) > 0 {
			out.Tag = out.Tags[0]
		}
		// Build args: proxies, the family's, the image's.
		if len(proxy)+len(f.BuildArgs)+len(img.BuildArgs) > 0 {
			out.BuildArgs = maps.Clone(proxy)
			maps.Copy(out.BuildArgs, f.BuildArgs)
			maps.Copy(out.BuildArgs, img.BuildArgs)
		}
		if len(f.Secrets)+len(img.Secrets) > 0 {
			out.Secrets = maps.Clone(f.Secrets)
			if out.Secrets == nil {
				out.Secrets = map[string]params.Secret{}
			}
			maps.Copy(out.Secrets, img.Secrets)
		}
		out.SSH = params.BuildParams{SSH: f.SSH}.SSHForwards(params.Image{SSH: img.SSH})
		fam.Images = append(fam.Images, out)
	}
	if len(errs) > 0 {
		return nil, &schemacheck.ValidationError{Errors: errs}
	}
	return fam, nil
}

var tagPattern = regexp.MustCompile(params.PatternTag)

// renderTemplate executes a template over data; a missing key is an error.
func renderTemplate(text string, data any) (string, error) {
	t, err := template.New("").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", errors.New(templateError(err))
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", errors.New(templateError(err))
	}
	return b.String(), nil
}

func declared(vars map[string]string) string {
	if len(vars) == 0 {
		return " (it has no variables)"
	}
	return " (variables: " + strings.Join(slices.Sorted(maps.Keys(vars)), ", ") + ")"
}

// discovered is an image found under images_dir.
type discovered struct {
	file    ImageSpec
	pointer string
}

// discover lists the images under images_dir: every directory holding a Dockerfile or a
// Dockerfile.tmpl is an image named after the directory, its context; the walk does not enter
// an image's directory (its subdirectories are its context) nor hidden directories.
func (f *File) discover() (map[string]discovered, []string, error) {
	found := map[string]discovered{}
	if f.ImagesDir == "" {
		return found, nil, nil
	}
	root := f.abs(f.ImagesDir)
	var errs []schemacheck.FieldError
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		var df string
		for _, name := range []string{DefaultDockerfile, DefaultDockerfile + ".tmpl"} {
			if st, err := os.Stat(filepath.Join(p, name)); err == nil && st.Mode().IsRegular() {
				if df != "" {
					errs = append(errs, schemacheck.FieldError{Pointer: "/images_dir",
						Message: fmt.Sprintf("%s holds both Dockerfile and Dockerfile.tmpl: keep one", filepath.ToSlash(p))})
				}
				df = name
			}
		}
		if df == "" {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		where := filepath.ToSlash(filepath.Join(f.ImagesDir, rel))
		name := filepath.Base(p)
		if p == root {
			errs = append(errs, schemacheck.FieldError{Pointer: "/images_dir",
				Message: fmt.Sprintf("%s holds a Dockerfile itself: images_dir is the directory above the images' directories", f.ImagesDir)})
			return nil
		}
		if !repoName.MatchString(name) {
			errs = append(errs, schemacheck.FieldError{Pointer: "/images_dir",
				Message: fmt.Sprintf("%s: the directory's name %q is not %s", where, name, params.PatternHints[params.PatternRepository])})
			return filepath.SkipDir
		}
		if other, dup := found[name]; dup {
			errs = append(errs, schemacheck.FieldError{Pointer: "/images_dir",
				Message: fmt.Sprintf("%s and %s both make an image named %q", other.pointer, where, name)})
			return filepath.SkipDir
		}
		found[name] = discovered{
			file:    ImageSpec{Name: name, Source: &SourceRef{Name: ImagesDirSource}, Context: rel, Dockerfile: df},
			pointer: where,
		}
		return filepath.SkipDir
	})
	if err != nil {
		return nil, nil, schemacheck.Invalid("/images_dir", "reading %s: %v", f.ImagesDir, err)
	}
	if len(errs) > 0 {
		return nil, nil, &schemacheck.ValidationError{Errors: errs}
	}
	names := slices.Sorted(maps.Keys(found))
	return found, names, nil
}

var repoName = regexp.MustCompile(params.PatternRepository)

// merge lays an explicit entry over an images_dir image: the entry's fields win where given.
func merge(d discovered, img ImageSpec) discovered {
	out := d.file
	out.Name = img.Name
	if img.Source != nil {
		out.Source = img.Source
		out.Context, out.Dockerfile = "", ""
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&out.Context, img.Context)
	set(&out.Dockerfile, img.Dockerfile)
	set(&out.Tag, img.Tag)
	set(&out.Target, img.Target)
	out.Tags, out.BuildArgs, out.Platforms, out.Labels = img.Tags, img.BuildArgs, img.Platforms, img.Labels
	out.Components, out.Bases, out.Enabled, out.Secrets, out.SSH = img.Components, img.Bases, img.Enabled, img.Secrets, img.SSH
	return discovered{file: out, pointer: d.pointer}
}

// abs makes a path relative to the file's directory absolute.
func (f *File) abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	dir := f.Dir
	if dir == "" {
		dir, _ = os.Getwd()
	}
	return filepath.Join(dir, filepath.FromSlash(p))
}

// absSource makes a source's relative local paths absolute against the file's directory.
func (f *File) absSource(s params.Source) params.Source {
	if l := s.Local; l != nil {
		c := *l
		c.Path = f.abs(c.Path)
		s.Local = &c
	}
	if t := s.Tar; t != nil && t.Path != "" {
		c := *t
		c.Path = f.abs(c.Path)
		s.Tar = &c
	}
	if g := s.GitRepo; g != nil && isRelDir(g.URL) {
		c := *g
		c.URL = f.abs(c.URL)
		s.GitRepo = &c
	}
	if b := s.BuildContext; b != nil && isRelDir(b.URL) {
		c := *b
		c.URL = f.abs(c.URL)
		s.BuildContext = &c
	}
	return s
}

// isRelDir reports whether a git URL is a relative directory: ./x or ../x (other forms are
// URLs, scp-like addresses or absolute paths).
func isRelDir(u string) bool {
	return u == "." || u == ".." || strings.HasPrefix(u, "./") || strings.HasPrefix(u, "../")
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// gitOf describes the git checkout holding dir; empty when there is none.
func gitOf(dir string) *Git {
	g := &Git{}
	if dir == "" {
		return g
	}
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return g
	}
	head, err := repo.Head()
	if err != nil {
		return g
	}
	if head.Name().IsBranch() {
		g.Branch = head.Name().Short()
	}
	g.Commit = head.Hash().String()
	g.ShortCommit = g.Commit[:7]
	return g
}

// AddSecrets makes r mask every secret of the family: registry and source credentials (with
// their Basic authorization forms), inline secret values, credentials in URLs, and the proxy
// build args' credentials.
func (fam *Family) AddSecrets(r *redact.Redactor) {
	for _, name := range slices.Sorted(maps.Keys(fam.Sources)) {
		params.BuildParams{Source: fam.Sources[name]}.AddSecrets(r)
	}
	params.BuildParams{Target: params.Target{Registry: fam.Registry}, Secrets: fam.Secrets}.AddSecrets(r)
	for _, img := range fam.Images {
		for _, s := range img.Secrets {
			r.Add(s.Value)
		}
		for _, k := range ProxyVars {
			if v, ok := img.BuildArgs[k]; ok {
				r.AddURL(v)
			}
		}
	}
}

// DeclaredVars splits the values of --var NAME=VALUE: those the file declares in variables set
// them (returned, for ExpandOptions.Vars); the others are only the .Vars of registry.stage_tag,
// and without a stage tag they are a mistake, an error naming the first.
func (f *File) DeclaredVars(vars map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		if _, ok := f.Variables[k]; ok {
			out[k] = vars[k]
		} else if f.Registry.StageTag == "" {
			return nil, fmt.Errorf("%s: the family file declares no such variable%s, and no registry.stage_tag uses it", k, declared(f.Variables))
		}
	}
	return out, nil
}
