package regserve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// What distribution v3.1.2 lacks of the OCI distribution spec 1.1, added in front of its
// handlers:
//
//   - the referrers API (GET /v2/NAME/referrers/DIGEST, with ?artifactType= filtering) and the
//     OCI-Subject header answering a manifest push that carries a subject. A push of such a
//     manifest records its descriptor under the subject (referrersRoot); the list leaves out
//     referrers deleted since.
//   - digests other than sha256 (sha512): distribution verifies a blob against any digest it
//     is given but stores and answers with the sha256 one, and refuses a manifest pushed by
//     another digest. The extension answers with the digest the client used, stores a pushed
//     manifest under its sha256 digest with a second revision link for the client's digest
//     (the link distribution itself writes for a blob uploaded under another digest), and adds
//     that link for blobs mounted by such a digest.

// referrersRoot holds REPOSITORY/_subjects/SUBJECT-ALG/SUBJECT-HEX/REFERRER-ALG-HEX: the
// referrer's descriptor as JSON ("_subjects" is no repository component).
const referrersRoot = "/imagebuilder/referrers"

// storageRepositories is where distribution's storage keeps repositories (its path layout).
const storageRepositories = "/docker/registry/v2/repositories"

var routePattern = regexp.MustCompile(`^/v2/(` + reference.NameRegexp.String() + `)/(manifests|blobs/uploads|blobs|referrers)/([^/]*)$`)

// maxManifest is the largest manifest body the extension reads (distribution's own limit).
const maxManifest = 4 << 20

type extensions struct {
	next   http.Handler
	ns     *namespace
	access auth.AccessController // nil without authentication
}

func (e *extensions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := routePattern.FindStringSubmatch(r.URL.Path)
	if m == nil {
		e.next.ServeHTTP(w, r)
		return
	}
	name, kind, last := m[1], m[len(m)-2], m[len(m)-1]
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case kind == "referrers" && get:
		e.referrers(w, r, name, last)
	case kind == "manifests" && r.Method == http.MethodPut:
		e.putManifest(w, r, name, last)
	case kind == "blobs" && get && otherDigest(last):
		e.next.ServeHTTP(&rewriter{ResponseWriter: w, digest: last}, r)
	case kind == "blobs/uploads" && r.Method == http.MethodPost && last == "" && e.postOnly(w, r, name):
		// answered: a monolithic upload or an anonymous mount
	case kind == "blobs/uploads" && (r.Method == http.MethodPut || r.Method == http.MethodPost):
		q := r.URL.Query()
		d := q.Get("digest")
		if d == "" {
			d = q.Get("mount")
		}
		if !otherDigest(d) {
			e.next.ServeHTTP(w, r)
			return
		}
		rw := &rewriter{ResponseWriter: w, digest: d, location: "/v2/" + name + "/blobs/" + d}
		if from := q.Get("from"); q.Get("mount") == d && from != "" {
			// distribution links a blob mounted by another digest to itself (a link that
			// resolves to nothing), and not under its sha256 digest, through which it is served:
			// link both as an upload does.
			rw.created = func(string) {
				if canonical, err := e.ns.driver.GetContent(r.Context(), layerLink(from, d)); err == nil {
					e.link(r.Context(), name, "_layers", d, string(canonical))
					e.link(r.Context(), name, "_layers", string(canonical), string(canonical))
				}
			}
		}
		e.next.ServeHTTP(rw, r)
	default:
		e.next.ServeHTTP(w, r)
	}
}

// otherDigest reports whether s is a valid digest of an algorithm other than sha256.
func otherDigest(s string) bool {
	d, err := digest.Parse(s)
	return err == nil && d.Algorithm() != digest.SHA256
}

// link makes alias resolve to canonical in repository name: kind is "_layers" (blobs) or
// "_manifests/revisions", the link distribution writes for a content it stores under another
// digest.
func (e *extensions) link(ctx context.Context, name, kind, alias, canonical string) {
	a, err := digest.Parse(alias)
	c, cerr := digest.Parse(canonical)
	if err != nil || cerr != nil || e.ns.driver == nil {
		return
	}
	p := linkPath(name, kind, a)
	if err := e.ns.driver.PutContent(ctx, p, []byte(c.String())); err != nil {
		e.ns.log.Warn("linking a digest", "repository", name, "digest", alias, "error", err)
	}
}

// rewriter answers a successful request with the client's digest instead of the sha256 one.
type rewriter struct {
	http.ResponseWriter
	digest   string // what the client named the content by
	location string // "" to keep Location
	created  func(canonical string)
	wrote    bool
}

func (rw *rewriter) WriteHeader(code int) {
	if !rw.wrote && (code == http.StatusOK || code == http.StatusCreated || code == http.StatusPartialContent) {
		h := rw.Header()
		canonical := h.Get("Docker-Content-Digest")
		if rw.created != nil && code == http.StatusCreated {
			rw.created(canonical)
		}
		if rw.digest != "" {
			h.Set("Docker-Content-Digest", rw.digest)
			if h.Get("Etag") != "" {
				h.Set("Etag", `"`+rw.digest+`"`)
			}
		}
		if rw.location != "" && h.Get("Location") != "" {
			h.Set("Location", rw.location)
		}
	}
	rw.wrote = true
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *rewriter) Write(p []byte) (int, error) {
	if !rw.wrote {
		rw.WriteHeader(http.StatusOK)
	}
	return rw.ResponseWriter.Write(p)
}

func (rw *rewriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// manifestFields are what the extension reads of a pushed manifest.
type manifestFields struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       *v1.Descriptor    `json:"config"`
	Subject      *v1.Descriptor    `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

func (e *extensions) putManifest(w http.ResponseWriter, r *http.Request, name, ref string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifest+1))
	if err != nil || len(body) > maxManifest {
		// Too large or unreadable: distribution answers it.
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		e.next.ServeHTTP(w, r)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var mf manifestFields
	_ = json.Unmarshal(body, &mf) // distribution judges the manifest
	rw := &rewriter{ResponseWriter: w}
	named := digest.Digest("")
	if otherDigest(ref) {
		// Pushed by a digest distribution does not compute: check it here, and let
		// distribution store the manifest under its sha256 digest.
		d := digest.Digest(ref)
		if d.Algorithm().FromBytes(body) != d {
			e.next.ServeHTTP(w, r) // distribution refuses the mismatch
			return
		}
		canonical := digest.FromBytes(body)
		r.URL.Path = strings.TrimSuffix(r.URL.Path, ref) + canonical.String()
		r.URL.RawPath = ""
		named, rw.digest, rw.location = d, ref, "/v2/"+name+"/manifests/"+ref
	}
	rw.created = func(canonical string) {
		if named != "" {
			e.link(r.Context(), name, "_manifests/revisions", named.String(), canonical)
		} else {
			named = digest.Digest(canonical)
		}
		if mf.Subject != nil && mf.Subject.Digest.Validate() == nil {
			e.addReferrer(r.Context(), name, mf, named, int64(len(body)), r.Header.Get("Content-Type"))
			rw.Header().Set("OCI-Subject", mf.Subject.Digest.String())
		}
	}
	e.next.ServeHTTP(rw, r)
}

func (e *extensions) addReferrer(ctx context.Context, name string, mf manifestFields, d digest.Digest, size int64, contentType string) {
	desc := v1.Descriptor{
		MediaType:    mf.MediaType,
		ArtifactType: mf.ArtifactType,
		Digest:       d,
		Size:         size,
		Annotations:  mf.Annotations,
	}
	if desc.MediaType == "" {
		desc.MediaType = contentType
	}
	if desc.ArtifactType == "" && mf.Config != nil && desc.MediaType == v1.MediaTypeImageManifest {
		desc.ArtifactType = mf.Config.MediaType
	}
	data, err := json.Marshal(desc)
	if err == nil {
		err = e.ns.driver.PutContent(ctx, referrerPath(name, mf.Subject.Digest, d), data)
	}
	if err != nil {
		e.ns.log.Warn("recording a referrer", "repository", name, "subject", mf.Subject.Digest, "error", err)
	}
}

func referrersDir(name string, subject digest.Digest) string {
	return path.Join(referrersRoot, name, "_subjects", subject.Algorithm().String(), subject.Encoded())
}

func referrerPath(name string, subject, referrer digest.Digest) string {
	return path.Join(referrersDir(name, subject), referrer.Algorithm().String()+"-"+referrer.Encoded())
}

// referrers answers the referrers API: an image index of the manifests pushed here with this
// subject that still exist.
func (e *extensions) referrers(w http.ResponseWriter, r *http.Request, name, dgst string) {
	if !e.authorized(w, r, name, "pull") {
		return
	}
	subject, err := digest.Parse(dgst)
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeDigestInvalid.WithDetail(dgst))
		return
	}
	ctx := r.Context()
	named, err := reference.WithName(name)
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeNameInvalid.WithDetail(name))
		return
	}
	want := r.URL.Query().Get("artifactType")
	manifests := []v1.Descriptor{}
	files, _ := e.ns.driver.List(ctx, referrersDir(name, subject)) // none yet: an empty list
	if len(files) > 0 {
		repo, err := e.ns.Namespace.Repository(ctx, named)
		if err != nil {
			_ = errcode.ServeJSON(w, errcode.ErrorCodeUnknown.WithDetail(err.Error()))
			return
		}
		ms, err := repo.Manifests(ctx)
		if err != nil {
			_ = errcode.ServeJSON(w, errcode.ErrorCodeUnknown.WithDetail(err.Error()))
			return
		}
		for _, f := range files {
			data, err := e.ns.driver.GetContent(ctx, f)
			var desc v1.Descriptor
			if err != nil || json.Unmarshal(data, &desc) != nil {
				continue
			}
			if ok, err := ms.Exists(ctx, desc.Digest); err == nil && !ok {
				_ = e.ns.driver.Delete(ctx, f) // deleted since
				continue
			}
			if want == "" || desc.ArtifactType == want {
				manifests = append(manifests, desc)
			}
		}
	}
	sort.Slice(manifests, func(i, j int) bool { return manifests[i].Digest < manifests[j].Digest })
	index := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: manifests}
	index.SchemaVersion = 2
	data, err := json.Marshal(index)
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnknown.WithDetail(err.Error()))
		return
	}
	w.Header().Set("Content-Type", v1.MediaTypeImageIndex)
	if want != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(data)
	}
}

// linkPath is where distribution's storage keeps the link of d in repository name; kind is
// "_layers" or "_manifests/revisions".
func linkPath(name, kind string, d digest.Digest) string {
	return path.Join(storageRepositories, name, kind, d.Algorithm().String(), d.Encoded(), "link")
}

func layerLink(name, d string) string {
	return linkPath(name, "_layers", digest.Digest(d))
}

// postOnly answers what distribution turns into an upload session: a POST with ?digest= and
// the blob as its body (a monolithic upload), and a POST with ?mount= and no from= (a mount
// from wherever this registry holds the blob; sha256 only, the digest blobs are stored by).
// It reports false, answering nothing, for every other POST.
func (e *extensions) postOnly(w http.ResponseWriter, r *http.Request, name string) bool {
	q := r.URL.Query()
	mount, from, dgst := q.Get("mount"), q.Get("from"), q.Get("digest")
	if (mount == "") == (dgst == "") || from != "" {
		return false
	}
	if !e.authorized(w, r, name, "pull", "push") {
		return true
	}
	ctx := r.Context()
	named, err := reference.WithName(name)
	if err != nil {
		return false
	}
	if mount != "" {
		d, err := digest.Parse(mount)
		if err != nil || d.Algorithm() != digest.Canonical {
			return false
		}
		if _, err := e.ns.Namespace.BlobStatter().Stat(ctx, d); err != nil {
			return false // not held here: distribution opens an upload session
		}
		e.link(ctx, name, "_layers", d.String(), d.String())
		created(w, name, d)
		return true
	}
	d, err := digest.Parse(dgst)
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeDigestInvalid.WithDetail(dgst))
		return true
	}
	repo, err := e.ns.Namespace.Repository(ctx, named)
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnknown.WithDetail(err.Error()))
		return true
	}
	bw, err := repo.Blobs(ctx).Create(ctx)
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnknown.WithDetail(err.Error()))
		return true
	}
	if _, err = io.Copy(bw, r.Body); err == nil {
		_, err = bw.Commit(ctx, v1.Descriptor{Digest: d, Size: bw.Size()})
	}
	if err != nil {
		_ = bw.Cancel(ctx)
		var invalid distribution.ErrBlobInvalidDigest
		if errors.As(err, &invalid) {
			_ = errcode.ServeJSON(w, errcode.ErrorCodeDigestInvalid.WithDetail(err.Error()))
		} else {
			_ = errcode.ServeJSON(w, errcode.ErrorCodeBlobUploadInvalid.WithDetail(err.Error()))
		}
		return true
	}
	created(w, name, d)
	return true
}

// created answers 201 for blob d of repository name.
func created(w http.ResponseWriter, name string, d digest.Digest) {
	w.Header().Set("Location", "/v2/"+name+"/blobs/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// authorized asks the access controller (as distribution's handlers do) for actions on
// repository name, and answers 401 with the challenge when it refuses.
func (e *extensions) authorized(w http.ResponseWriter, r *http.Request, name string, actions ...string) bool {
	if e.access == nil {
		return true
	}
	var access []auth.Access
	for _, a := range actions {
		access = append(access, auth.Access{Resource: auth.Resource{Type: "repository", Name: name}, Action: a})
	}
	_, err := e.access.Authorized(r, access...)
	if err == nil {
		return true
	}
	var ch auth.Challenge
	if errors.As(err, &ch) {
		ch.SetHeaders(r, w)
	}
	_ = errcode.ServeJSON(w, errcode.ErrorCodeUnauthorized.WithDetail(err.Error()))
	return false
}
