package registry

import (
	"cmp"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

var (
	// ErrNotFound is wrapped by errors about a manifest (tag or digest) or blob the registry
	// does not have, including a repository it does not know.
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized is wrapped by errors where the registry or its token server refused the
	// credentials or denied access (HTTP 401 or 403), or demanded credentials the client does
	// not have.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUnsupported is wrapped by errors where the registry refused an operation it does
	// not support or allow (HTTP 405, or the UNSUPPORTED error code), such as a delete on a
	// registry with deletes disabled.
	ErrUnsupported = errors.New("unsupported by the registry")
)

// kindError tags err with one of the sentinel errors without changing its message.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// classify tags registry answers callers branch on with a sentinel error.
func classify(err error) error {
	var k *kindError
	if errors.As(err, &k) {
		return err
	}
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return err
	}
	switch terr.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return &kindError{kind: ErrUnauthorized, err: err}
	case http.StatusMethodNotAllowed:
		return &kindError{kind: ErrUnsupported, err: err}
	case http.StatusNotFound:
		// A 404 on /v2/ means "not a registry", not "no such image".
		if terr.Request != nil && (strings.Contains(terr.Request.URL.Path, "/manifests/") || strings.Contains(terr.Request.URL.Path, "/blobs/")) {
			return &kindError{kind: ErrNotFound, err: err}
		}
	}
	for _, d := range terr.Errors {
		if d.Code == transport.UnsupportedErrorCode {
			return &kindError{kind: ErrUnsupported, err: err}
		}
	}
	return err
}

// clientError is what the exported methods return: the message has every known secret
// replaced, and the chain stays available to errors.Is and errors.As.
type clientError struct {
	msg string
	err error
}

func (e *clientError) Error() string { return e.msg }
func (e *clientError) Unwrap() error { return e.err }

// fail turns err into the error an exported method returns.
func (c *Client) fail(err error) error {
	if err == nil {
		return nil
	}
	return &clientError{msg: c.secrets.scrub(err.Error()), err: classify(err)}
}

// secrets is the set of strings a client must never let out: the credentials it was given or
// read, and every Authorization value it sent (so bearer tokens from a token server too).
type secrets struct {
	mu       sync.Mutex
	set      map[string]struct{}
	replacer *strings.Replacer // rebuilt lazily after additions
}

func (s *secrets) add(vals ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range vals {
		if v == "" {
			continue
		}
		for _, form := range []string{v, url.QueryEscape(v), url.PathEscape(v)} {
			if _, ok := s.set[form]; !ok {
				if s.set == nil {
					s.set = map[string]struct{}{}
				}
				s.set[form] = struct{}{}
				s.replacer = nil
			}
		}
	}
}

func (s *secrets) addCredentials(c Credentials) {
	s.add(c.Password, c.IdentityToken, c.RegistryToken)
	if c.Password != "" {
		s.add(base64.StdEncoding.EncodeToString([]byte(c.Username + ":" + c.Password)))
	}
}

// addAuthorization records the credential part of an Authorization header value.
func (s *secrets) addAuthorization(header string) {
	if header == "" {
		return
	}
	if _, cred, ok := strings.Cut(header, " "); ok {
		s.add(strings.TrimSpace(cred))
		return
	}
	s.add(header)
}

// bearerBody is how go-containerregistry starts an error that quotes a token server's whole
// answer, which may hold tokens the client never sent and so cannot know.
const bearerBody = "no token in bearer response"

func (s *secrets) scrub(msg string) string {
	if i := strings.Index(msg, bearerBody); i >= 0 {
		msg = msg[:i+len(bearerBody)] + " (response body withheld)"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.set) == 0 {
		return msg
	}
	if s.replacer == nil {
		vals := make([]string, 0, len(s.set))
		for v := range s.set {
			vals = append(vals, v)
		}
		// Longest first, so that a secret containing another is replaced whole.
		slices.SortFunc(vals, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
		pairs := make([]string, 0, 2*len(vals))
		for _, v := range vals {
			pairs = append(pairs, v, redacted)
		}
		s.replacer = strings.NewReplacer(pairs...)
	}
	return s.replacer.Replace(msg)
}
