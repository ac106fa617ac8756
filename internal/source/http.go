package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/redact"
)

// download is an open http(s) response body. Reads fail once the server has been silent for
// the timeout; Close releases everything.
type download struct {
	body    io.ReadCloser
	size    int64 // Content-Length, -1 when unknown
	timer   *time.Timer
	timeout time.Duration
	fired   *atomic.Bool
	cancel  context.CancelFunc
}

func (d *download) Read(p []byte) (int, error) {
	n, err := d.body.Read(p)
	if err != nil && d.fired.Load() {
		return n, fmt.Errorf("timed out: no data from the server for %s", d.timeout)
	}
	d.timer.Reset(d.timeout)
	return n, err
}

func (d *download) Close() error {
	d.timer.Stop()
	d.cancel()
	return d.body.Close()
}

// parseDownloadURL checks an http(s) URL and takes userinfo out of it. It returns the URL to
// request (query included) and the credentials to use:
// user and pass when given, else the URL's userinfo.
func parseDownloadURL(raw, user, pass string) (u *url.URL, outUser, outPass, urlSecret string, err error) {
	u, err = url.Parse(raw)
	if err != nil {
		return nil, "", "", "", fmt.Errorf("invalid URL %q", redact.URL(raw))
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, "", "", "", fmt.Errorf("invalid URL %q: want http:// or https://", redact.URL(raw))
	}
	if u.User != nil {
		urlSecret, _ = u.User.Password()
		if user == "" && pass == "" {
			user = u.User.Username()
			pass = urlSecret
		}
		u.User = nil
	}
	return u, user, pass, urlSecret, nil
}

// get starts a GET of u with optional basic auth and checks the status.
func (o *options) get(ctx context.Context, u *url.URL, user, pass string) (*download, error) {
	ctx, cancel := context.WithCancel(ctx)
	fired := new(atomic.Bool)
	timer := time.AfterFunc(o.timeout, func() { fired.Store(true); cancel() })
	fail := func(err error) (*download, error) {
		timer.Stop()
		cancel()
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(err)
	}
	withAuth := user != "" || pass != ""
	if withAuth {
		req.SetBasicAuth(user, pass)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		var uerr *url.Error
		switch {
		case fired.Load():
			err = fmt.Errorf("timed out: no response from the server within %s", o.timeout)
		case ctx.Err() != nil:
			err = context.Cause(ctx)
		case errors.As(err, &uerr):
			err = uerr.Err // the URL is in our own message
		}
		return fail(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return fail(statusError(resp, withAuth))
	}
	return &download{body: resp.Body, size: resp.ContentLength, timer: timer, timeout: o.timeout, fired: fired, cancel: cancel}, nil
}

func statusError(resp *http.Response, withAuth bool) error {
	status := "HTTP " + resp.Status
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		if withAuth {
			return fmt.Errorf("%s: the server rejected the username or password", status)
		}
		return fmt.Errorf("%s: the server needs a username and password", status)
	case http.StatusForbidden:
		return fmt.Errorf("%s: access denied", status)
	case http.StatusNotFound:
		return fmt.Errorf("%s: no such file on the server", status)
	}
	return errors.New(status)
}

// downloadFile downloads a Dockerfile to dst (at most the Dockerfile limit) and returns the
// URL without credentials and the hex sha256 of the file.
func (o *options) downloadFile(ctx context.Context, raw, user, pass, dst string) (display, sum string, err error) {
	u, user, pass, urlSecret, err := parseDownloadURL(raw, user, pass)
	if err != nil {
		return "", "", masker(raw, pass).Error(fmt.Errorf("downloading dockerfile: %w", err))
	}
	display = redact.URL(u.String())
	o.logf("downloading dockerfile %q", display)
	sum, err = o.fetchToFile(ctx, u, user, pass, dst)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return "", "", masker(raw, pass, urlSecret).Error(fmt.Errorf("downloading dockerfile %q: %w", display, err))
	}
	return display, sum, nil
}

func (o *options) fetchToFile(ctx context.Context, u *url.URL, user, pass, dst string) (string, error) {
	d, err := o.get(ctx, u, user, pass)
	if err != nil {
		return "", err
	}
	defer d.Close()
	limit := o.limits.DockerfileBytes
	tooLarge := fmt.Errorf("larger than the limit of %d bytes", limit)
	if d.size > limit {
		return "", tooLarge // announced by the server: fail before reading
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(d, limit+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return "", err
	case n > limit:
		return "", tooLarge
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// downloadTar streams a tarball from an http(s) URL into root.
func (o *options) downloadTar(ctx context.Context, raw, user, pass, root string) (display, sum string, err error) {
	u, user, pass, urlSecret, err := parseDownloadURL(raw, user, pass)
	if err != nil {
		return "", "", masker(raw, pass).Error(fmt.Errorf("downloading tarball: %w", err))
	}
	display = redact.URL(u.String())
	o.logf("downloading and extracting tarball %q", display)
	sum, err = func() (string, error) {
		d, err := o.get(ctx, u, user, pass)
		if err != nil {
			return "", err
		}
		defer d.Close()
		return o.extractHashed(ctx, d, root)
	}()
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return "", "", masker(raw, pass, urlSecret).Error(fmt.Errorf("extracting tarball %q: %w", display, err))
	}
	return display, sum, nil
}

// extractFile extracts a tarball on this machine into root.
func (o *options) extractFile(ctx context.Context, name, root string) (string, error) {
	o.logf("extracting tarball %q", name)
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("extracting tarball: %w", err)
	}
	defer f.Close()
	sum, err := o.extractHashed(ctx, f, root)
	if err != nil {
		return "", fmt.Errorf("extracting tarball %q: %w", name, err)
	}
	return sum, nil
}

func (o *options) extractHashed(ctx context.Context, r io.Reader, root string) (string, error) {
	h := sha256.New()
	if err := extract(ctx, io.TeeReader(r, h), root, o.limits); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
