package registry

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/imagebuilder/imagebuilder/internal/redact"
)

// Scope limits where a registry's credentials may write (push, tag, delete): the repositories,
// as regular expressions over the repository path under the host ("team/app"), each anchored
// at the start as Zuul's re.match is (^team/ and team/ are the same rule; end one with $ to
// name a single repository). A host with scopes refuses every write outside them; a host
// without any is not limited.
type Scope struct {
	// Registry is the host, as build params name it (127.0.0.1:5000, docker.io).
	Registry string
	// Repositories are the regular expressions; a repository matching one may be written.
	Repositories []string
	// Origin names where the rule comes from in messages ("/target/registry/repositories",
	// "credentials file creds.yaml, entry 2").
	Origin string
}

type compiledScope struct {
	Scope
	res []*regexp.Regexp
}

// ErrOutOfScope is wrapped by every write refused by a Scope.
var ErrOutOfScope = errors.New("outside the repositories the credentials may write to")

// WithScopes limits the client's writes to these scopes.
func WithScopes(scopes ...Scope) Option {
	return func(o *options) error {
		for _, s := range scopes {
			h, err := Host(s.Registry)
			if err != nil {
				return fmt.Errorf("scope %s: %w", s.Origin, err)
			}
			cs := compiledScope{Scope: s}
			for _, re := range s.Repositories {
				c, err := regexp.Compile("^(?:" + re + ")")
				if err != nil {
					return fmt.Errorf("scope %s: %q is not a regular expression: %w", s.Origin, re, err)
				}
				cs.res = append(cs.res, c)
			}
			if o.scopes == nil {
				o.scopes = map[string][]compiledScope{}
			}
			o.scopes[h] = append(o.scopes[h], cs)
		}
		return nil
	}
}

// CheckWrite reports whether the client may write to repo (HOST/PATH): nil, or an error wrapping
// ErrOutOfScope that names the rules. Every write the client makes is checked the same way; a
// caller checks first to refuse a request before any work.
func (c *Client) CheckWrite(repo string) error {
	host, path, ok := strings.Cut(repo, "/")
	if !ok {
		return fmt.Errorf("%q is not a repository", repo)
	}
	h, err := Host(host)
	if err != nil {
		return err
	}
	return c.checkWrite(h, path)
}

func (c *Client) checkWrite(host, path string) error {
	scopes := c.scopes[host]
	if len(scopes) == 0 {
		return nil
	}
	var rules []string
	for _, s := range scopes {
		for _, re := range s.res {
			if re.MatchString(path) {
				return nil
			}
		}
		rules = append(rules, fmt.Sprintf("%s (%s)", strings.Join(s.Repositories, ", "), s.Origin))
	}
	return fmt.Errorf("writing to %s/%s: %w: %s", host, path, ErrOutOfScope, strings.Join(rules, "; "))
}

// writeTarget returns the repository path a write request goes to ("" for a read or a request
// that is not about a repository): /v2/NAME/manifests/..., /v2/NAME/blobs/..., with a mount's
// source repository (?from=) counting as a read.
func writeTarget(req *http.Request) string {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return ""
	}
	p := strings.TrimPrefix(req.URL.Path, "/v2/")
	if p == req.URL.Path {
		return ""
	}
	for _, kind := range []string{"/manifests/", "/blobs/"} {
		if i := strings.LastIndex(p, kind); i > 0 {
			return p[:i]
		}
	}
	return ""
}

// Credentials file: what `--credentials FILE` and IMAGEBUILDER_CREDENTIALS name.

// ScopedCredentials are one entry of a credentials file.
type ScopedCredentials struct {
	// Registry host the credentials are for.
	Registry string `json:"registry"`
	// Username and Password log in (together or neither).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// Repositories the credentials may write to (Scope); empty: any.
	Repositories []string `json:"repositories,omitempty"`
}

// LoadCredentialsFile reads a credentials file: a YAML or JSON list of {registry, username,
// password, repositories}. Errors name the entry (/2/registry) and never quote a password.
func LoadCredentialsFile(name string) ([]ScopedCredentials, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading the credentials file: %w", err)
	}
	var entries []ScopedCredentials
	if err := yaml.UnmarshalStrict(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), &entries); err != nil {
		return nil, fmt.Errorf("credentials file %s: not a list of {registry, username, password, repositories}: %s", name, redactYAMLError(err, data))
	}
	if err := CheckCredentials(entries); err != nil {
		return nil, fmt.Errorf("credentials file %s is invalid:\n%w", name, err)
	}
	return entries, nil
}

// CheckCredentials checks credentials entries (a credentials file's, or a module's credentials
// option): each names a registry, username and password go together, every repository rule is
// a regular expression. The errors name the entry by JSON pointer (/2/registry), never a
// password.
func CheckCredentials(entries []ScopedCredentials) error {
	var errs []error
	for i, e := range entries {
		switch {
		case e.Registry == "":
			errs = append(errs, fmt.Errorf("/%d/registry: missing", i))
		case (e.Username == "") != (e.Password == ""):
			errs = append(errs, fmt.Errorf("/%d: username and password go together", i))
		}
		if e.Registry != "" {
			if _, err := Host(e.Registry); err != nil {
				errs = append(errs, fmt.Errorf("/%d/registry: %w", i, err))
			}
		}
		for j, re := range e.Repositories {
			if _, err := regexp.Compile(re); err != nil {
				errs = append(errs, fmt.Errorf("/%d/repositories/%d: %q is not a regular expression: %w", i, j, re, err))
			}
		}
	}
	return errors.Join(errs...)
}

// CredentialsEnv names the environment variable that names the credentials file when no flag
// or option does.
const CredentialsEnv = "IMAGEBUILDER_CREDENTIALS"

// CredentialsFileOptions reads the credentials file name (else the one $IMAGEBUILDER_CREDENTIALS
// names; neither: no options) into client options (CredentialOptions), and adds its passwords
// to red.
func CredentialsFileOptions(name string, red *redact.Redactor) ([]Option, error) {
	if name == "" {
		name = os.Getenv(CredentialsEnv)
	}
	if name == "" {
		return nil, nil
	}
	entries, err := LoadCredentialsFile(name)
	if err != nil {
		return nil, err
	}
	AddCredentialSecrets(red, entries)
	return CredentialOptions(entries, "credentials file "+name), nil
}

// AddCredentialSecrets adds the entries' passwords, and their basic-auth forms, to red.
func AddCredentialSecrets(red *redact.Redactor, entries []ScopedCredentials) {
	for _, e := range entries {
		red.Add(e.Password)
		red.AddBasic(e.Username, e.Password)
	}
}

// redactYAMLError keeps a decoding error from quoting the file's values (passwords).
func redactYAMLError(err error, data []byte) string {
	msg := err.Error()
	var entries []map[string]any
	if yaml.Unmarshal(data, &entries) == nil {
		for _, e := range entries {
			if p, ok := e["password"].(string); ok && p != "" {
				msg = strings.ReplaceAll(msg, p, "********")
			}
		}
	}
	return msg
}

// CredentialOptions turns credentials-file entries into client options: each entry's
// credentials for its registry, and its repositories as a scope (origin names the file).
func CredentialOptions(entries []ScopedCredentials, origin string) []Option {
	var opts []Option
	for i, e := range entries {
		if e.Username != "" {
			opts = append(opts, WithCredentials(e.Registry, Credentials{Username: e.Username, Password: e.Password}))
		}
		if len(e.Repositories) > 0 {
			opts = append(opts, WithScopes(Scope{Registry: e.Registry, Repositories: e.Repositories, Origin: fmt.Sprintf("%s, entry %d", origin, i)}))
		}
	}
	return opts
}

// ScopedCredentialOptions are the client options of credentials entries given inline (origin
// names them in messages; CheckCredentials first) followed by those of the credentials file
// (CredentialsFileOptions: file, else $IMAGEBUILDER_CREDENTIALS); every password is added to red.
func ScopedCredentialOptions(inline []ScopedCredentials, origin, file string, red *redact.Redactor) ([]Option, error) {
	AddCredentialSecrets(red, inline)
	fromFile, err := CredentialsFileOptions(file, red)
	if err != nil {
		return nil, err
	}
	return append(CredentialOptions(inline, origin), fromFile...), nil
}
