package family

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/imagebuilder/imagebuilder/internal/dockerfile"
	"github.com/imagebuilder/imagebuilder/internal/source"
)

// Prepared are an image's build inputs.
type Prepared struct {
	// ContextDir is the build context: the source's context directory itself, or, when the
	// image has components, a copy of it under the caller's directory with them copied in.
	ContextDir string
	// Dockerfile is the Dockerfile to build: the source's, or one written under the caller's
	// directory when rendering or the header and footer changed it.
	Dockerfile string
	// Data is the Dockerfile's final content.
	Data []byte
}

// Template is the suffix of Dockerfiles rendered with the variables before the build.
const Template = ".tmpl"

// Prepare materializes img's build inputs under dir (an empty directory the caller owns and
// removes), from the fetched sources by name (fetched with source.ContextsOnly): the
// context to build (a copy with the components copied in, when there are components) and the
// Dockerfile (rendered with the family's variables when its name ends in .tmpl, then with the
// header and footer inserted). Nothing is read through a link that leaves its source.
func (fam *Family) Prepare(img Image, fetched map[string]*source.Fetched, dir string) (*Prepared, error) {
	p, err := fam.prepare(img, fetched, dir)
	if err != nil {
		return nil, fmt.Errorf("image %q (%s): %w", img.Name, img.Pointer, err)
	}
	return p, nil
}

func (fam *Family) prepare(img Image, fetched map[string]*source.Fetched, dir string) (*Prepared, error) {
	src := fetched[img.Source]
	if src == nil {
		return nil, fmt.Errorf("source %q was not fetched", img.Source)
	}
	ctxDir, err := src.Resolve(src.ContextDir, img.Context, true)
	if err != nil {
		return nil, fmt.Errorf("context: %w", err)
	}
	// The Dockerfile: a downloaded one, or the image's inside its context.
	dfPath, dfName := src.Dockerfile, "Dockerfile"
	if img.Dockerfile != "" || dfPath == "" {
		name := or(img.Dockerfile, DefaultDockerfile)
		dfPath, err = src.Resolve(ctxDir, name, false)
		if errors.Is(err, fs.ErrNotExist) && img.Dockerfile == DefaultDockerfile {
			if alt, altErr := src.Resolve(ctxDir, DefaultDockerfile+Template, false); altErr == nil {
				dfPath, err, name = alt, nil, DefaultDockerfile+Template
			}
		}
		if err != nil {
			return nil, fmt.Errorf("dockerfile: %w", err)
		}
		dfName = name
	}
	data, err := src.ReadFile(dfPath)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dfName, err)
	}
	out := &Prepared{ContextDir: ctxDir, Dockerfile: dfPath, Data: data}
	changed := false
	if strings.HasSuffix(dfName, Template) {
		rendered, err := renderTemplate(string(data), fam.Variables)
		if err != nil {
			return nil, fmt.Errorf("rendering %s: %s", dfName, err)
		}
		out.Data, changed = []byte(rendered), true
	}
	if fam.Header != "" || fam.Footer != "" {
		wrapped, err := dockerfile.Wrap(out.Data, fam.Header, fam.Footer, img.Target)
		if err != nil {
			return nil, fmt.Errorf("adding the header and footer to %s: %w", dfName, err)
		}
		out.Data, changed = wrapped, true
	}
	if changed {
		out.Dockerfile = filepath.Join(dir, "Dockerfile")
		if err := os.WriteFile(out.Dockerfile, out.Data, 0o644); err != nil {
			return nil, fmt.Errorf("writing the Dockerfile: %w", err)
		}
	}
	if len(img.Components) == 0 {
		return out, nil
	}
	// A copy of the context, then each component into it.
	out.ContextDir = filepath.Join(dir, "context")
	if err := copyTree(src, ctxDir, out.ContextDir, true); err != nil {
		return nil, fmt.Errorf("copying the context: %w", err)
	}
	for i, c := range img.Components {
		csrc := fetched[c.Source]
		if csrc == nil {
			return nil, fmt.Errorf("component %d: source %q was not fetched", i, c.Source)
		}
		from, err := resolveAny(csrc, c.Path)
		if err != nil {
			return nil, fmt.Errorf("component %d (source %q): path %w", i, c.Source, err)
		}
		dest := filepath.Join(out.ContextDir, filepath.FromSlash(c.Dest))
		if rel, err := filepath.Rel(out.ContextDir, dest); err != nil || (rel != "." && !filepath.IsLocal(rel)) {
			return nil, fmt.Errorf("component %d: dest %q leaves the context", i, c.Dest)
		}
		if err := copyTree(csrc, from, dest, false); err != nil {
			return nil, fmt.Errorf("component %d (source %q, path %q): %w", i, c.Source, c.Path, err)
		}
	}
	return out, nil
}

// resolveAny resolves a component's path, a directory or a file, inside its source.
func resolveAny(src *source.Fetched, rel string) (string, error) {
	p, err := src.Resolve(src.ContextDir, or(rel, "."), true)
	if err == nil {
		return p, nil
	}
	if f, ferr := src.Resolve(src.ContextDir, or(rel, "."), false); ferr == nil {
		return f, nil
	}
	return "", err
}

// copyTree copies from (a directory or file inside src.Root) to dest, reading through src's
// root so nothing is read outside it. keepLinks copies symlinks as symlinks (an image's own
// context, which BuildKit would send as it is); otherwise a symlink is followed when it stays
// inside the source and refused when it leaves it (a component's files land in another tree,
// where its links would mean something else).
func copyTree(src *source.Fetched, from, dest string, keepLinks bool) error {
	root, err := os.OpenRoot(src.Root)
	if err != nil {
		return err
	}
	defer root.Close()
	rel := func(p string) (string, error) {
		r, err := filepath.Rel(src.Root, p)
		if err != nil || (r != "." && !filepath.IsLocal(r)) {
			return "", fmt.Errorf("%q is not inside the source", p)
		}
		return r, nil
	}
	var copyOne func(from, dest string, depth int) error
	copyOne = func(from, dest string, depth int) error {
		if depth > 64 {
			return fmt.Errorf("%s: too many nested directories or links", from)
		}
		r, err := rel(from)
		if err != nil {
			return err
		}
		fi, err := root.Lstat(r)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := root.Readlink(r)
			if err != nil {
				return err
			}
			if keepLinks {
				return os.Symlink(target, dest)
			}
			real, err := filepath.EvalSymlinks(from)
			if err != nil {
				return fmt.Errorf("%s: %w", filepath.ToSlash(r), err)
			}
			if _, err := rel(real); err != nil {
				return fmt.Errorf("%s is a link that leaves the source (to %q)", filepath.ToSlash(r), target)
			}
			return copyOne(real, dest, depth+1)
		case fi.IsDir():
			if err := os.MkdirAll(dest, fi.Mode().Perm()|0o700); err != nil {
				return err
			}
			entries, err := fs.ReadDir(root.FS(), filepath.ToSlash(r))
			if err != nil {
				return err
			}
			for _, e := range entries {
				if err := copyOne(filepath.Join(from, e.Name()), filepath.Join(dest, e.Name()), depth+1); err != nil {
					return err
				}
			}
			if err := os.Chmod(dest, fi.Mode().Perm()); err != nil {
				return err
			}
			return os.Chtimes(dest, fi.ModTime(), fi.ModTime())
		case fi.Mode().IsRegular():
			in, err := root.Open(r)
			if err != nil {
				return err
			}
			defer in.Close()
			if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
				return err
			}
			outF, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(outF, in); err != nil {
				outF.Close()
				return err
			}
			if err := outF.Close(); err != nil {
				return err
			}
			if err := os.Chmod(dest, fi.Mode().Perm()); err != nil {
				return err
			}
			return os.Chtimes(dest, fi.ModTime(), fi.ModTime())
		}
		return fmt.Errorf("%s is not a regular file, directory or link", filepath.ToSlash(r))
	}
	return copyOne(from, dest, 0)
}
