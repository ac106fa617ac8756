package plugin

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// SearchPath returns the directories searched for plugin programs, in order: those of
// IMAGEBUILDER_PLUGIN_PATH (colon-separated), the directory of the running program, then those
// of PATH. Empty entries and repeats are left out.
func SearchPath() []string {
	var dirs []string
	add := func(d string) {
		if d != "" && !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	for _, d := range filepath.SplitList(os.Getenv(EnvPath)) {
		add(d)
	}
	if exe, err := os.Executable(); err == nil {
		add(filepath.Dir(exe))
	}
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		add(d)
	}
	return dirs
}

// Find returns the path of the program imagebuilder-builder-NAME: the first found in
// [SearchPath]. The error is one line naming every directory searched.
func Find(name string) (string, error) {
	prog := ProgramPrefix + name
	p, err := FindProgram(prog)
	if err != nil {
		return "", fmt.Errorf("builder plugin %q not found: %w", name, err)
	}
	return p, nil
}

// FindProgram returns the path of an imagebuilder helper program (a builder plugin,
// imagebuilder-server): the first found in [SearchPath]. The error is one line naming every
// directory searched.
func FindProgram(prog string) (string, error) {
	dirs := SearchPath()
	for _, d := range dirs {
		p := filepath.Join(d, prog)
		if executable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no program %s in %s (%s, then the directory of imagebuilder, then PATH)",
		prog, strings.Join(dirs, ":"), EnvPath)
}

// Found is a plugin program found in the search path.
type Found struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// Discover lists the plugin programs of [SearchPath], by name; for a name found in several
// directories the first wins, as for [Find].
func Discover() []Found {
	var out []Found
	seen := map[string]bool{}
	for _, d := range SearchPath() {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			name, ok := strings.CutPrefix(e.Name(), ProgramPrefix)
			if !ok || name == "" || seen[name] {
				continue
			}
			p := filepath.Join(d, e.Name())
			if executable(p) {
				seen[name] = true
				out = append(out, Found{Name: name, Path: p})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// executable reports whether p is a regular file (after symlinks) that someone may execute.
func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
