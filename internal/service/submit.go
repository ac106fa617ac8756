package service

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/imagebuilder/imagebuilder/internal/family"
	"github.com/imagebuilder/imagebuilder/internal/params"
	"github.com/imagebuilder/imagebuilder/internal/redact"
	"github.com/imagebuilder/imagebuilder/internal/schemacheck"
)

// jobArgs are a River job's arguments: the invocation id, nothing else (the document is in the
// invocation's rows, its secrets sealed).
type jobArgs struct {
	InvocationID string `json:"invocation_id"`
}

// Kind is River's name of the job kind.
func (jobArgs) Kind() string { return "imagebuilder_invocation" }

// document is a submitted document, checked: what the worker runs and what is stored.
type document struct {
	kind   Kind
	params *params.BuildParams // KindBuild
	file   *family.File        // KindFamily
	fam    *family.Family      // KindFamily, expanded
	red    *redact.Redactor    // knows the document's secrets
	masked []byte              // the document as stored and shown: no secret
	images []string
}

// Submit checks a document (build params, or a family file, as JSON or YAML) and queues it.
// A document that does not validate, or that the policy refuses (see Options.AllowLocal), is a
// *ValidationError and nothing is queued. The invocation, its sealed document and its job are
// written in one transaction.
func (s *Service) Submit(ctx context.Context, p Principal, kind Kind, doc []byte, dryRun bool) (*Invocation, error) {
	if kind == "" {
		kind = KindBuild
	}
	if p.Name == "" {
		return nil, errors.New("submitting: the caller has no name")
	}
	d, err := s.check(kind, doc)
	if err != nil {
		return nil, err
	}
	inv := &Invocation{
		ID: uuid.NewString(), Kind: kind, Owner: p.Name, State: Pending,
		Submitted: time.Now().UTC().Truncate(time.Microsecond), Document: d.masked, DryRun: dryRun, Images: d.images,
	}
	sealed, err := s.sealer.Seal(doc, []byte(inv.ID))
	if err != nil {
		return nil, fmt.Errorf("submitting: %w", err)
	}
	images, _ := json.Marshal(inv.Images)
	err = s.db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.db.q(`INSERT INTO invocations (id, kind, owner, state, submitted, document, dry_run, images) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			inv.ID, string(inv.Kind), inv.Owner, string(inv.State), micros(inv.Submitted), string(inv.Document), boolInt(dryRun), string(images)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.db.q(`INSERT INTO invocation_secrets (invocation_id, sealed) VALUES (?, ?)`), inv.ID, sealed); err != nil {
			return err
		}
		res, err := s.river.InsertTx(ctx, tx, jobArgs{InvocationID: inv.ID}, &river.InsertOpts{Queue: queue, MaxAttempts: s.opts.MaxAttempts})
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.db.q(`UPDATE invocations SET job_id = ? WHERE id = ?`), res.Job.ID, inv.ID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("queueing invocation %s: %w", inv.ID, err)
	}
	s.log.Info("invocation queued", "invocation", inv.ID, "kind", kind, "owner", p.Name, "images", inv.Images)
	return inv, nil
}

// check decodes, validates, applies the policy to, and masks a document.
func (s *Service) check(kind Kind, data []byte) (*document, error) {
	generic, _, err := schemacheck.Decode(data)
	if err != nil {
		return nil, validationError(err)
	}
	if _, ok := generic.(map[string]any); !ok {
		return nil, &ValidationError{Errors: []FieldError{{Pointer: "", Message: "the document must be an object"}}}
	}
	d := &document{kind: kind, red: redact.New()}
	var masked any
	switch kind {
	case KindBuild:
		if err := params.Validate(generic); err != nil {
			return nil, validationError(err)
		}
		if d.params, err = params.DecodeValid(generic); err != nil {
			return nil, validationError(err)
		}
		if errs := s.policyBuild(d.params); len(errs) > 0 {
			return nil, &ValidationError{Errors: errs}
		}
		d.params.AddSecrets(d.red)
		for _, img := range d.params.Target.Images {
			d.images = append(d.images, d.params.Target.Ref(img))
		}
		masked = params.Mask(generic, d.red)
	case KindFamily:
		if d.file, err = family.FromDoc(generic); err != nil {
			return nil, validationError(err)
		}
		if errs := s.policyFamily(d.file); len(errs) > 0 {
			return nil, &ValidationError{Errors: errs}
		}
		if d.fam, err = d.file.Expand(family.ExpandOptions{Getenv: os.LookupEnv}); err != nil {
			return nil, validationError(err)
		}
		d.fam.AddSecrets(d.red)
		for _, img := range d.fam.Images {
			d.images = append(d.images, img.Ref())
		}
		masked = family.Mask(generic, d.red)
	default:
		return nil, &ValidationError{Errors: []FieldError{{Pointer: "/kind", Message: fmt.Sprintf("unknown kind %q: want build or family", kind)}}}
	}
	if d.masked, err = json.Marshal(masked); err != nil {
		return nil, fmt.Errorf("encoding the masked document: %w", err)
	}
	if d.images == nil {
		d.images = []string{}
	}
	return d, nil
}

// validationError turns the validators' error into a *ValidationError (their messages never
// quote a secret value); another error passes through, redacted of nothing it could hold.
func validationError(err error) error {
	var ve *schemacheck.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	out := &ValidationError{}
	for _, fe := range ve.Errors {
		out.Errors = append(out.Errors, FieldError{Pointer: fe.Pointer, Message: fe.Message})
	}
	return out
}

// allowHint ends every policy message.
const allowHint = "the server does not use its own files, environment or agents for a request unless started with --allow-local"

// policyBuild lists what build params ask of the server's own resources, unless AllowLocal.
func (s *Service) policyBuild(p *params.BuildParams) []FieldError {
	if s.opts.AllowLocal {
		return nil
	}
	var errs []FieldError
	errs = append(errs, policySource("/source", p.Source)...)
	errs = append(errs, policySecrets("/secrets", p.Secrets, p.SSH)...)
	for i, img := range p.Target.Images {
		errs = append(errs, policySecrets(fmt.Sprintf("/target/images/%d/secrets", i), img.Secrets, img.SSH)...)
	}
	errs = append(errs, policyBuilder("/builder", p.Builder)...)
	return errs
}

// policyFamily lists what a family file asks of the server's own resources, unless AllowLocal.
func (s *Service) policyFamily(f *family.File) []FieldError {
	if s.opts.AllowLocal {
		return nil
	}
	var errs []FieldError
	if f.ImagesDir != "" {
		errs = append(errs, FieldError{Pointer: "/images_dir", Message: "images_dir reads a directory of the server: " + allowHint})
	}
	if f.ProxyFromEnv {
		errs = append(errs, FieldError{Pointer: "/proxy_from_env", Message: "proxy_from_env reads the server's environment: " + allowHint})
	}
	for _, name := range slices.Sorted(maps.Keys(f.Sources)) {
		errs = append(errs, policySource("/sources/"+schemacheck.Escape(name), f.Sources[name])...)
	}
	errs = append(errs, policySecrets("/secrets", f.Secrets, f.SSH)...)
	for i, img := range f.Images {
		ptr := fmt.Sprintf("/images/%d", i)
		if img.Source != nil && img.Source.Inline != nil {
			errs = append(errs, policySource(ptr+"/source", *img.Source.Inline)...)
		}
		errs = append(errs, policySecrets(ptr+"/secrets", img.Secrets, img.SSH)...)
	}
	errs = append(errs, policyBuilder("/builder", f.Builder)...)
	return errs
}

func policySource(ptr string, src params.Source) []FieldError {
	var errs []FieldError
	refuse := func(field, what string) {
		errs = append(errs, FieldError{Pointer: ptr + field, Message: what + ": " + allowHint})
	}
	if src.Local != nil {
		refuse("/local", "a local source is a directory of the server")
	}
	if src.Tar != nil && src.Tar.Path != "" {
		refuse("/tar/path", "a tar path is a file of the server")
	}
	if src.GitRepo != nil && localGitURL(src.GitRepo.URL) {
		refuse("/git_repo/url", "a file:// or path git URL is a repository on the server")
	}
	if src.BuildContext != nil && localGitURL(src.BuildContext.URL) {
		refuse("/build_context/url", "a file:// or path git URL is a repository on the server")
	}
	return errs
}

// localGitURL reports whether a clone URL names the server's file system: file://, or a path
// (not scheme://… nor an scp-like host:path).
func localGitURL(u string) bool {
	if strings.HasPrefix(strings.ToLower(u), "file:") {
		return true
	}
	if strings.Contains(u, "://") {
		return false
	}
	colon := strings.IndexByte(u, ':')
	slash := strings.IndexByte(u, '/')
	return colon < 0 || (slash >= 0 && slash < colon)
}

func policySecrets(ptr string, secrets map[string]params.Secret, ssh []string) []FieldError {
	var errs []FieldError
	for _, id := range slices.Sorted(maps.Keys(secrets)) {
		sec := secrets[id]
		p := ptr + "/" + schemacheck.Escape(id)
		if sec.File != "" {
			errs = append(errs, FieldError{Pointer: p + "/file", Message: "a file secret is read from the server: " + allowHint})
		}
		if sec.Env != "" {
			errs = append(errs, FieldError{Pointer: p + "/env", Message: "an env secret is read from the server's environment: " + allowHint})
		}
	}
	if len(ssh) > 0 {
		errs = append(errs, FieldError{Pointer: strings.TrimSuffix(ptr, "/secrets") + "/ssh", Message: "ssh forwards the server's agent or keys: " + allowHint})
	}
	return errs
}

// policyBuilder refuses a request's choice of build engine and its TLS files: the engine is
// the server's (serve --builder, else its environment's default), and an endpoint named in a
// request would reach the server's sockets, run its builder plugins or open connections from
// it into its network.
func policyBuilder(ptr string, b *params.Builder) []FieldError {
	if b == nil {
		return nil
	}
	var errs []FieldError
	const engine = "the build engine is the server's to choose (serve --builder); an endpoint reaches the server's sockets, plugins and network: "
	if b.Endpoint != "" {
		errs = append(errs, FieldError{Pointer: ptr + "/endpoint", Message: engine + allowHint})
	}
	for i := range b.Endpoints {
		errs = append(errs, FieldError{Pointer: fmt.Sprintf("%s/endpoints/%d/endpoint", ptr, i), Message: engine + allowHint})
	}
	if b.TLS != nil {
		errs = append(errs, FieldError{Pointer: ptr + "/tls", Message: "builder TLS files are files of the server: " + allowHint})
	}
	return errs
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
