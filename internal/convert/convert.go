// Package convert turns build-params documents (or any JSON/YAML data) from JSON to YAML and back,
// one document or a whole directory tree. YAML output has sorted keys, so YAML -> JSON -> YAML is
// stable.
package convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/imagebuilder/imagebuilder/internal/params"
)

// Options control a conversion.
type Options struct {
	// To is the output format; "" means the other one than the input's.
	To params.Format
	// Defaults fills in the documented defaults (version HEAD, dockerfile Dockerfile, workdir .).
	// The document must then be valid build params.
	Defaults bool
}

// Convert converts one document. It returns the output and its format.
func Convert(data []byte, opts Options) ([]byte, params.Format, error) {
	doc, from, err := params.Decode(data)
	if err != nil {
		return nil, "", err
	}
	to := opts.To
	if to == "" {
		to = params.YAML
		if from == params.YAML {
			to = params.JSON
		}
	}
	var js []byte
	if opts.Defaults {
		if err := params.Validate(doc); err != nil {
			return nil, "", err
		}
		p, err := params.DecodeValid(doc)
		if err != nil {
			return nil, "", err
		}
		js, err = marshalJSON(p.WithDefaults())
		if err != nil {
			return nil, "", err
		}
	} else if js, err = marshalJSON(doc); err != nil {
		return nil, "", err
	}
	switch to {
	case params.JSON:
		return js, to, nil
	case params.YAML:
		y, err := yaml.JSONToYAML(js)
		if err != nil {
			return nil, "", fmt.Errorf("converting to YAML: %w", err)
		}
		return y, to, nil
	}
	return nil, "", fmt.Errorf("unknown output format %q (want json or yaml)", to)
}

func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding JSON: %w", err)
	}
	return buf.Bytes(), nil
}

// Extension is the file extension written for a format.
func Extension(f params.Format) string {
	if f == params.JSON {
		return ".json"
	}
	return ".yaml"
}

// IsDocument reports whether a file name has a JSON or YAML extension.
func IsDocument(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json", ".yaml", ".yml":
		return true
	}
	return false
}

// Tree converts every .json, .yaml and .yml file under inDir into outDir, mirroring the
// relative paths and replacing the extension. It converts every file it can and returns the
// files written and one error naming each file that failed.
func Tree(inDir, outDir string, opts Options) ([]string, error) {
	var written []string
	var errs []error
	walkErr := filepath.WalkDir(inDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !IsDocument(p) {
			return nil
		}
		rel, err := filepath.Rel(inDir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading %q: %w", p, err))
			return nil
		}
		out, to, err := Convert(data, opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:\n%w", p, err))
			return nil
		}
		dst := filepath.Join(outDir, strings.TrimSuffix(rel, filepath.Ext(rel))+Extension(to))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("creating %q: %w", filepath.Dir(dst), err)
		}
		if err := os.WriteFile(dst, out, 0o644); err != nil {
			return fmt.Errorf("writing %q: %w", dst, err)
		}
		written = append(written, dst)
		return nil
	})
	if walkErr != nil {
		errs = append(errs, walkErr)
	}
	return written, errors.Join(errs...)
}
