package source

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// HashContext returns a digest of what a build sees of the context directory dir: every path
// the .dockerignore rules leave in, with its type, permission bits, and content (a symbolic
// link's target, a file's bytes). ignore is the .dockerignore in force (the Dockerfile's own
// NAME.dockerignore, else the context's .dockerignore; nil: none). Modification times, owners
// and the order the file system lists entries in do not count, so an unchanged checkout in
// another directory hashes the same.
func HashContext(dir string, ignore []byte) (string, error) {
	var patterns []string
	if ignore != nil {
		var err error
		if patterns, err = ignorefile.ReadAll(bytes.NewReader(ignore)); err != nil {
			return "", fmt.Errorf("reading .dockerignore: %w", err)
		}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return "", fmt.Errorf("reading .dockerignore: %w", err)
	}
	h := sha256.New()
	record := func(fields ...string) {
		for _, f := range fields {
			io.WriteString(h, strconv.Itoa(len(f)))
			io.WriteString(h, ":")
			io.WriteString(h, f)
		}
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		excluded, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if excluded {
			// A directory that is left out may still hold a re-included path (!pattern).
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode()
		record(rel, strconv.FormatUint(uint64(mode.Type()|mode.Perm()), 8))
		switch {
		case mode.Type() == fs.ModeSymlink:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			record(target)
		case mode.IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			fh := sha256.New()
			if _, err := io.Copy(fh, f); err != nil {
				return err
			}
			record(hex.EncodeToString(fh.Sum(nil)))
		}
		return nil
	})
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return "", fmt.Errorf("hashing the build context: %w", err)
		}
		return "", fmt.Errorf("hashing the build context %s: %w", dir, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
