package plugin

import (
	"context"

	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/builder/plugin/pluginpb"
	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func init() {
	builder.RegisterPluginDriver(driver{})
}

// driver is what internal/builder calls for plugin:NAME endpoints.
type driver struct{}

func (driver) Find(name string) (string, error) { return Find(name) }

func (driver) Open(ctx context.Context, name string, query url.Values) (builder.Builder, error) {
	return Open(ctx, name, query)
}

// logOutput is where the host logs what a plugin did wrong: asking for the credentials of a
// host the build does not involve.
var logOutput io.Writer = os.Stderr

// Open finds the plugin program imagebuilder-builder-NAME ([Find]), starts it with the
// settings query (see [Query]), checks the handshake and returns it as a Builder. Close kills
// the plugin process.
func Open(ctx context.Context, name string, query url.Values) (builder.Builder, error) {
	path, err := Find(name)
	if err != nil {
		return nil, err
	}
	return open(ctx, name, path, query)
}

func open(ctx context.Context, name, path string, query url.Values) (builder.Builder, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sel := builder.Selection{Kind: builder.KindPlugin, Endpoint: builder.PluginEndpoint(name, query).String(), Origin: builder.OriginExplicit}
	b := &pluginBuilder{name: name, path: path, sel: sel, stderr: &tail{}}
	b.log = hclog.New(&hclog.LoggerOptions{Name: ProgramPrefix + name, Level: hclog.Warn, Output: logOutput})
	// go-plugin's own logging stays off: a failure is an error quoting the plugin's stderr.
	quiet := hclog.New(&hclog.LoggerOptions{Level: hclog.Off, Output: io.Discard})
	cmd := exec.Command(path)
	// The environment is passed whole (SkipHostEnv) so that the settings cannot be overridden
	// by a variable of the same name in imagebuilder's environment.
	cmd.Env = append(os.Environ(), EnvQuery+"="+query.Encode())
	dieWithParent(cmd)
	b.client = goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  handshake(ProtocolVersion),
		Plugins:          goplugin.PluginSet{pluginKey: &grpcPlugin{}},
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		// The broker's connections (the credentials service) are mutually authenticated.
		AutoMTLS:     true,
		StartTimeout: startTimeout,
		Logger:       quiet,
		// The plugin's stderr: what it writes before and after go-plugin takes it over.
		Stderr:     b.stderr,
		SyncStderr: b.stderr,
		SyncStdout: b.stderr,
	})
	rpc, err := b.client.Client()
	if err != nil {
		b.client.Kill()
		return nil, b.startError(err)
	}
	raw, err := rpc.Dispense(pluginKey)
	if err != nil {
		b.client.Kill()
		return nil, b.startError(err)
	}
	b.remote = raw.(*remote)
	return b, nil
}

// pluginVersion finds the plugin's protocol version in go-plugin's handshake error.
var pluginVersion = regexp.MustCompile(`incompatible API version with plugin\. Plugin version: (\d+)`)

// startError is the error of a plugin that did not start: a handshake mismatch is one line
// naming both versions; anything else quotes the plugin's last stderr lines.
func (b *pluginBuilder) startError(err error) error {
	if m := pluginVersion.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("builder plugin %q (%s) speaks plugin protocol version %s, this imagebuilder speaks version %d: use a plugin built for protocol %d",
			b.name, b.path, m[1], ProtocolVersion, ProtocolVersion)
	}
	return fmt.Errorf("starting builder plugin %q (%s): %v%s", b.name, b.path, err, b.stderrNote())
}

// stderrNote is the plugin's last stderr lines, for an error ("" when it wrote none).
func (b *pluginBuilder) stderrNote() string {
	if s := b.stderr.String(); s != "" {
		return "; its last stderr lines:\n" + s
	}
	return ""
}

// pluginBuilder is a started plugin.
type pluginBuilder struct {
	name, path string
	sel        builder.Selection
	client     *goplugin.Client
	remote     *remote
	stderr     *tail
	log        hclog.Logger
	closeOnce  sync.Once
}

func (b *pluginBuilder) Selection() builder.Selection { return b.sel }

func (b *pluginBuilder) Info(ctx context.Context) (builder.Info, error) {
	resp, err := b.remote.rpc.Info(ctx, &pluginpb.InfoRequest{})
	if err != nil {
		return builder.Info{}, fmt.Errorf("describing %s: %w", b.sel.Endpoint, b.callError(ctx, err))
	}
	return infoFromProto(resp), nil
}

// Close kills the plugin process: gracefully first, then, after two seconds, with SIGKILL.
func (b *pluginBuilder) Close() error {
	b.closeOnce.Do(b.client.Kill)
	return nil
}

// Build sends the request to the plugin, serves its credential requests for the hosts the
// request involves, passes its progress on, and returns its result.
func (b *pluginBuilder) Build(ctx context.Context, req builder.Request) (*builder.Built, error) {
	errInfo := builder.Error{Repository: req.Repository, Platforms: req.Platforms, Endpoint: b.sel.Endpoint}
	fail := func(step builder.Step, err error) error {
		e := errInfo
		e.Step, e.Err = step, err
		return &e
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	id := b.remote.broker.NextId()
	stop := b.serveCredentials(id, req)
	defer stop()
	stream, err := b.remote.rpc.Build(ctx, requestToProto(req, id))
	if err != nil {
		return nil, fail(builder.StepConnect, b.callError(ctx, err))
	}
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return nil, fail(builder.StepBuild, fmt.Errorf("builder plugin %q ended the build without a result%s", b.name, b.stderrNote()))
		}
		if err != nil {
			return nil, fail(builder.StepBuild, b.callError(ctx, err))
		}
		switch e := ev.GetEvent().(type) {
		case *pluginpb.BuildEvent_Status:
			if req.Progress == nil {
				continue
			}
			var m controlapi.StatusResponse
			if err := proto.Unmarshal(e.Status, &m); err != nil {
				return nil, fail(builder.StepBuild, fmt.Errorf("builder plugin %q sent a progress event that does not decode: %w", b.name, err))
			}
			req.Progress(client.NewSolveStatus(&m))
		case *pluginpb.BuildEvent_Built:
			return &builder.Built{Digest: e.Built.GetDigest(), Platforms: e.Built.GetPlatforms(), Endpoint: b.endpoint(e.Built.GetEndpoint())}, nil
		case *pluginpb.BuildEvent_Error:
			be := errorFromProto(e.Error)
			be.Endpoint = b.endpoint(be.Endpoint)
			if be.Repository == "" {
				be.Repository = req.Repository
			}
			if len(be.Platforms) == 0 {
				be.Platforms = req.Platforms
			}
			return nil, be
		}
	}
}

// endpoint names the plugin, and the endpoint it reports if any: plugin:buildah (vfs:/x).
func (b *pluginBuilder) endpoint(inner string) string {
	if inner == "" || inner == b.sel.Endpoint {
		return b.sel.Endpoint
	}
	return b.sel.Endpoint + " (" + inner + ")"
}

// exitWait bounds how long a failed call waits for go-plugin to notice that the plugin exited.
const exitWait = 2 * time.Second

// callError explains a failed call: the caller's cancellation as such; a plugin that exited
// (crashed, killed) as that, naming the plugin with its last stderr lines.
func (b *pluginBuilder) callError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("builder plugin %q: %w", b.name, context.Cause(ctx))
	}
	for deadline := time.Now().Add(exitWait); !b.client.Exited() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	msg := status.Convert(err).Message()
	if b.client.Exited() {
		return fmt.Errorf("builder plugin %q (%s) exited unexpectedly (%s)%s", b.name, b.path, msg, b.stderrNote())
	}
	return fmt.Errorf("builder plugin %q: %s", b.name, msg)
}

// serveCredentials serves the Credentials service on the broker id for one build and returns
// the function that stops it.
func (b *pluginBuilder) serveCredentials(id uint32, req builder.Request) (stop func()) {
	cs := &credentialsServer{allowed: req.RegistryHosts(), creds: req.Credentials, log: b.log, plugin: b.name}
	var (
		mu      sync.Mutex
		srv     *grpc.Server
		stopped bool
	)
	go b.remote.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		pluginpb.RegisterCredentialsServer(s, cs)
		mu.Lock()
		defer mu.Unlock()
		srv = s
		if stopped {
			s.Stop() // Serve then returns at once
		}
		return s
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		if srv != nil {
			srv.Stop()
		}
	}
}

// credentialsServer answers a plugin's credential requests with the request's Credentials
// callback, for the hosts the request involves only.
type credentialsServer struct {
	pluginpb.UnimplementedCredentialsServer
	allowed []string
	creds   func(host string) (string, string, error)
	log     hclog.Logger
	plugin  string
}

func (s *credentialsServer) Credentials(_ context.Context, req *pluginpb.CredentialsRequest) (*pluginpb.CredentialsResponse, error) {
	host := builder.RegistryHost(req.GetHost())
	if !slices.Contains(s.allowed, host) {
		s.log.Warn(fmt.Sprintf("builder plugin %q asked for the credentials of %q, which the build does not involve (%v): answered with none", s.plugin, req.GetHost(), s.allowed))
		return &pluginpb.CredentialsResponse{}, nil
	}
	if s.creds == nil {
		return &pluginpb.CredentialsResponse{}, nil
	}
	user, secret, err := s.creds(host)
	if err != nil {
		return &pluginpb.CredentialsResponse{Error: err.Error()}, nil
	}
	return &pluginpb.CredentialsResponse{Username: user, Secret: secret}, nil
}

var _ builder.Builder = (*pluginBuilder)(nil)
