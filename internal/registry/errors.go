package registry

import (
	"errors"
	"net/http"
	"strings"

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
	msg := c.scrub(err.Error())
	if strings.Contains(msg, plainAnswer) {
		msg += " (the registry speaks plain HTTP: imagebuilder uses plain HTTP only for loopback registries and those marked insecure, and sends no credentials to any other)"
	}
	return &clientError{msg: msg, err: classify(err)}
}

// plainAnswer is how net/http reports an HTTPS request answered in plain HTTP.
const plainAnswer = "server gave HTTP response to HTTPS client"

// bearerBody is how go-containerregistry starts an error that quotes a token server's whole
// answer, which may hold tokens the client never sent and so cannot know.
const bearerBody = "no token in bearer response"

// scrub masks every secret the client knows of in msg, and withholds a token server's answer
// quoted in it.
func (c *Client) scrub(msg string) string {
	if i := strings.Index(msg, bearerBody); i >= 0 {
		msg = msg[:i+len(bearerBody)] + " (response body withheld)"
	}
	return c.red.String(msg)
}

// addCredentials makes the client mask creds from now on.
func (c *Client) addCredentials(creds Credentials) {
	c.red.AddBasic(creds.Username, creds.Password)
	c.red.Add(creds.IdentityToken, creds.RegistryToken)
}
