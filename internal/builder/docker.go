package builder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	dockerclient "github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"
)

const (
	// mobyExporter loads the result into the daemon's image store. Daemons with the classic
	// store (20.10 and later without the containerd store) know only moby, local and tar.
	mobyExporter = "moby"
	// snapshotterLabel is set on the worker of daemons that use the containerd image store.
	snapshotterLabel = "org.mobyproject.buildkit.worker.snapshotter"
	// tempImageName is the repository of the temporary local tag a build gets in the daemon.
	tempImageName = "imagebuilder-build"
	// cleanupTimeout bounds removing the temporary tag after a (possibly cancelled) build.
	cleanupTimeout = 30 * time.Second
)

var (
	_ Builder = (*dockerBuilder)(nil)
	_ Builder = (*buildkitBuilder)(nil)
)

// dockerBuilder drives a Docker daemon's embedded BuildKit through the Engine API.
type dockerBuilder struct {
	baseBuilder
	docker *dockerclient.Client
	c      *client.Client

	mu          sync.Mutex
	hostNetwork *bool // detected once; nil until then
}

// dockerClientOpts are the Docker client options of a selected Docker daemon, from docker/cli's
// context endpoint: the host, TLS data of a context or of DOCKER_CERT_PATH, and for ssh:// the
// connection helper that runs `docker system dial-stdio` on the remote, so every connection
// (API calls and the hijacked /grpc and /session streams) goes through it. builder.tls replaces
// the TLS files of a tcp:// address.
func dockerClientOpts(sel selected, o options) ([]dockerclient.Opt, error) {
	opts, err := sel.docker.ClientOpts()
	if err != nil {
		return nil, errors.New(scrub(err.Error(), sel.docker.Host))
	}
	if o.tls != nil {
		opts = append(opts, dockerclient.WithTLSClientConfig(o.tls.CACert, o.tls.Cert, o.tls.Key))
	}
	return opts, nil
}

func newDocker(ctx context.Context, sel selected, o options) (*dockerBuilder, error) {
	shown := sel.ep.String()
	copts, err := dockerClientOpts(sel, o)
	if err != nil {
		return nil, &Error{Step: StepConnect, Endpoint: shown, Err: fmt.Errorf("configuring the Docker client: %w", err)}
	}
	dc, err := dockerclient.New(copts...)
	if err != nil {
		return nil, &Error{Step: StepConnect, Endpoint: shown, Err: fmt.Errorf("configuring the Docker client: %w", err)}
	}
	// The API version is negotiated on the first request (moby/moby/client supports API
	// 1.40 and later; Debian's 20.10 speaks 1.41). The hijacked /grpc and /session
	// endpoints are unversioned; DialHijack dials through the client's dialer (the
	// connection helper's, for ssh://).
	c, err := client.New(ctx, "",
		client.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return dc.DialHijack(ctx, "/grpc", "h2c", nil)
		}),
		client.WithSessionDialer(func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
			return dc.DialHijack(ctx, "/session", proto, meta)
		}),
	)
	if err != nil {
		dc.Close()
		return nil, &Error{Step: StepConnect, Endpoint: shown, Err: fmt.Errorf("connecting to the daemon's BuildKit: %w", err)}
	}
	return &dockerBuilder{baseBuilder: baseBuilder{endpoint: sel.ep, sel: sel.Selection, opts: o}, docker: dc, c: c}, nil
}

func (b *dockerBuilder) Close() error {
	return errors.Join(b.c.Close(), b.docker.Close())
}

// useHostNetwork decides whether RUN steps need the host network: WithHostNetwork wins;
// otherwise a daemon without a "bridge" network (dockerd --bridge=none) cannot give build
// containers their default network ("network bridge not found"), so they get the host's.
func (b *dockerBuilder) useHostNetwork(ctx context.Context) (bool, error) {
	if b.opts.hostNetwork != nil {
		return *b.opts.hostNetwork, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hostNetwork != nil {
		return *b.hostNetwork, nil
	}
	nets, err := b.docker.NetworkList(ctx, dockerclient.NetworkListOptions{
		Filters: make(dockerclient.Filters).Add("name", "bridge"),
	})
	if err != nil {
		return false, fmt.Errorf("listing the daemon's networks: %w", err)
	}
	host := true
	for _, n := range nets.Items {
		if n.Name == "bridge" {
			host = false
		}
	}
	b.hostNetwork = &host
	return host, nil
}

func (b *dockerBuilder) Info(ctx context.Context) (Info, error) {
	v, err := b.docker.ServerVersion(ctx, dockerclient.ServerVersionOptions{})
	if err != nil {
		return Info{}, fmt.Errorf("describing %s: %w", b.endpoint, err)
	}
	native, all, labels, err := workerPlatforms(ctx, b.c)
	if err != nil {
		return Info{}, fmt.Errorf("describing %s: %w", b.endpoint, err)
	}
	host, err := b.useHostNetwork(ctx)
	if err != nil {
		return Info{}, fmt.Errorf("describing %s: %w", b.endpoint, err)
	}
	info := Info{
		Kind:           KindDocker,
		Endpoint:       b.endpoint.String(),
		NativePlatform: native,
		Platforms:      all,
		// Each platform gets its own solve: the moby exporter of a classic image store holds
		// one platform per image, and no daemon pushes by digest.
		MultiPlatform: false,
		DaemonVersion: v.Version,
		APIVersion:    b.docker.ClientVersion(),
		HostNetwork:   host,
	}
	if _, ok := labels[snapshotterLabel]; ok {
		info.ContainerdStore = true
	}
	if bi, err := b.c.Info(ctx); err == nil { // Unimplemented before BuildKit 0.11 (Docker 23)
		info.BuildKitVersion = bi.BuildkitVersion.Version
	}
	return info, nil
}

func (b *dockerBuilder) Build(ctx context.Context, req Request) (*Built, error) {
	nr, plats, errInfo, err := b.prepare(ctx, b.c, req)
	if err != nil {
		return nil, err
	}
	if req.Publisher == nil {
		return nil, errInfo.at(StepValidate, errors.New("the docker driver needs a publisher to push what the daemon built"))
	}
	host, err := b.useHostNetwork(ctx)
	if err != nil {
		return nil, errInfo.at(StepConnect, err)
	}
	sink := NewProgressSink(req.Progress)

	pushed := make([]string, len(plats))
	g, gctx := errgroup.WithContext(ctx)
	for i, p := range plats {
		g.Go(func() error {
			d, err := b.buildOne(gctx, nr, p, host, sink)
			if err != nil {
				return err
			}
			pushed[i] = d
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	res := &Built{Platforms: plats, Endpoint: b.endpoint.String()}
	if len(pushed) == 1 {
		res.Digest = pushed[0]
		return res, nil
	}
	done := sink.Step(fmt.Sprintf("[imagebuilder] pushing index %s", nr.repo))
	dgst, err := req.Publisher.AssembleIndex(ctx, nr.repo.Name(), pushed)
	done(err)
	if err != nil {
		return nil, errInfo.at(StepIndex, err)
	}
	res.Digest = dgst
	return res, nil
}

// buildOne builds one platform into the daemon under a temporary tag, pushes it by digest
// through the request's publisher, removes the tag and returns the pushed digest.
func (b *dockerBuilder) buildOne(ctx context.Context, nr *normalizedRequest, platform string, host bool, sink *ProgressSink) (string, error) {
	errInfo := Error{Repository: nr.repo.String(), Platforms: []string{platform}, Endpoint: b.endpoint.String()}
	tmp, err := tempTag()
	if err != nil {
		return "", errInfo.at(StepBuild, err)
	}
	exports := []client.ExportEntry{{Type: mobyExporter, Attrs: map[string]string{"name": tmp}}}
	opt, err := solveOpt(nr, []string{platform}, host, exports)
	if err != nil {
		return "", errInfo.at(StepValidate, err)
	}
	resp, err := solve(ctx, b.c, opt, sink, errInfo, false)
	// The exporter may have tagged the image even when the solve failed late.
	defer b.removeTag(ctx, tmp)
	if err != nil {
		return "", err
	}
	id := resp.ExporterResponse[exptypes.ExporterImageDigestKey]
	if id == "" {
		return "", errInfo.at(StepBuild, errors.New("the moby exporter returned no image ID"))
	}
	done := sink.Step(fmt.Sprintf("[imagebuilder] pushing %s for %s", nr.repo, platform))
	d, err := pushFromDaemon(ctx, b.docker, id, nr.repo.Name(), nr.Publisher, b.opts.tempDir)
	done(err)
	if err != nil {
		return "", errInfo.at(StepPush, err)
	}
	return d, nil
}

// removeTag drops a build's temporary tag (and with it the image, unless another tag holds
// it); it runs even when ctx is cancelled.
func (b *dockerBuilder) removeTag(ctx context.Context, tag string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	// A missing tag (the solve failed before exporting) is not an error worth reporting.
	_, _ = b.docker.ImageRemove(ctx, tag, dockerclient.ImageRemoveOptions{PruneChildren: true})
}

// tempTag returns a unique local image name for one build.
func tempTag() (string, error) {
	var buf [8]byte
	if _, err := rand.Read(buf[:]); err != nil {
		return "", fmt.Errorf("generating a temporary tag: %w", err)
	}
	return tempImageName + ":" + hex.EncodeToString(buf[:]), nil
}
