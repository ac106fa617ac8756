package builder

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// buildkitBuilder drives a buildkitd directly: one solve for all platforms, exporter "image"
// pushing by digest.
type buildkitBuilder struct {
	baseBuilder
	c *client.Client
}

func newBuildKit(ctx context.Context, sel selected, o options) (*buildkitBuilder, error) {
	ep := sel.ep
	var copts []client.ClientOpt
	if t := o.tls; t != nil {
		if t.CACert == "" {
			copts = append(copts, client.WithServerConfigSystem(t.ServerName))
		} else {
			copts = append(copts, client.WithServerConfig(t.ServerName, t.CACert))
		}
		if t.Cert != "" {
			copts = append(copts, client.WithCredentials(t.Cert, t.Key))
		}
	}
	c, err := client.New(ctx, ep.Address, copts...)
	if err != nil {
		return nil, &Error{Step: StepConnect, Endpoint: ep.String(), Err: fmt.Errorf("connecting: %w", err)}
	}
	return &buildkitBuilder{baseBuilder: baseBuilder{endpoint: ep, sel: sel.Selection, opts: o}, c: c}, nil
}

func (b *buildkitBuilder) Close() error { return b.c.Close() }

func (b *buildkitBuilder) hostNetwork() bool {
	return b.opts.hostNetwork != nil && *b.opts.hostNetwork
}

func (b *buildkitBuilder) Info(ctx context.Context) (Info, error) {
	native, all, _, err := workerPlatforms(ctx, b.c)
	if err != nil {
		return Info{}, fmt.Errorf("describing %s: %w", b.endpoint, err)
	}
	info := Info{
		Kind:           KindBuildKit,
		Endpoint:       b.endpoint.String(),
		NativePlatform: native,
		Platforms:      all,
		MultiPlatform:  true,
		HostNetwork:    b.hostNetwork(),
	}
	if bi, err := b.c.Info(ctx); err == nil {
		info.BuildKitVersion = bi.BuildkitVersion.Version
	}
	return info, nil
}

func (b *buildkitBuilder) Build(ctx context.Context, req Request) (*Built, error) {
	nr, plats, errInfo, err := b.prepare(ctx, b.c, req)
	if err != nil {
		return nil, err
	}
	exports := []client.ExportEntry{{Type: client.ExporterImage, Attrs: imageExportAttrs(nr)}}
	opt, err := solveOpt(nr, plats, b.hostNetwork(), exports)
	if err != nil {
		return nil, errInfo.at(StepValidate, err)
	}
	resp, err := solve(ctx, b.c, opt, NewProgressSink(req.Progress), errInfo, true)
	if err != nil {
		return nil, err
	}
	dgst := resp.ExporterResponse[exptypes.ExporterImageDigestKey]
	if dgst == "" {
		return nil, errInfo.at(StepPush, errors.New("the image exporter returned no digest"))
	}
	return &Built{Digest: dgst, Platforms: plats, Endpoint: b.endpoint.String()}, nil
}

// imageExportAttrs are the image exporter's options: push by digest only (no tag), OCI media
// types so that both drivers produce the same kind of manifests. registry.insecure (plain
// HTTP allowed, TLS not verified) only for a registry marked insecure: buildkitd reaches
// loopback registries over plain HTTP by itself, and verifies TLS everywhere else.
func imageExportAttrs(req *normalizedRequest) map[string]string {
	attrs := map[string]string{
		"name":           req.repo.Name(),
		"push":           "true",
		"push-by-digest": "true",
		"oci-mediatypes": "true",
	}
	if req.Insecure {
		attrs["registry.insecure"] = strconv.FormatBool(true)
	}
	return attrs
}

// workerPlatforms returns the native platform (the first worker's first platform), every
// platform the workers can run, and the workers' labels.
func workerPlatforms(ctx context.Context, c *client.Client) (native string, all []string, labels map[string]string, err error) {
	ws, err := c.ListWorkers(ctx)
	if err != nil {
		return "", nil, nil, fmt.Errorf("listing workers: %w", err)
	}
	if len(ws) == 0 || len(ws[0].Platforms) == 0 {
		return "", nil, nil, errors.New("the endpoint has no workers")
	}
	labels = map[string]string{}
	for _, w := range ws {
		for _, p := range w.Platforms {
			f := formatPlatform(p)
			if !slices.Contains(all, f) {
				all = append(all, f)
			}
		}
		maps.Copy(labels, w.Labels)
	}
	return formatPlatform(ws[0].Platforms[0]), all, labels, nil
}

func formatPlatform(p ocispecs.Platform) string {
	return platforms.Format(platforms.Normalize(p))
}
