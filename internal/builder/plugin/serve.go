package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/builder/plugin/pluginpb"
	"github.com/moby/buildkit/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Serve serves b as a builder plugin on the process's stdio handshake and returns when the host
// closes the plugin (b is closed then). Call it from the plugin program's main; run by hand,
// the program says that it is a plugin and exits.
func Serve(b builder.Builder) {
	serve(b, ProtocolVersion)
}

func serve(b builder.Builder, version uint) {
	defer b.Close()
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: handshake(version),
		Plugins:         goplugin.PluginSet{pluginKey: &grpcPlugin{impl: b}},
		GRPCServer:      goplugin.DefaultGRPCServer,
		Logger:          hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Warn, Output: os.Stderr}),
	})
}

// grpcPlugin is the go-plugin side of the contract: the server for the plugin, the client for
// the host.
type grpcPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	impl builder.Builder // plugin side only
}

func (p *grpcPlugin) GRPCServer(broker *goplugin.GRPCBroker, s *grpc.Server) error {
	pluginpb.RegisterBuilderServer(s, &server{impl: p.impl, broker: broker})
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, broker *goplugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &remote{rpc: pluginpb.NewBuilderClient(conn), broker: broker}, nil
}

// remote is the host's handle on a started plugin.
type remote struct {
	rpc    pluginpb.BuilderClient
	broker *goplugin.GRPCBroker
}

// server serves a Builder to the host.
type server struct {
	pluginpb.UnimplementedBuilderServer
	impl   builder.Builder
	broker *goplugin.GRPCBroker
}

func (s *server) Info(ctx context.Context, _ *pluginpb.InfoRequest) (*pluginpb.InfoResponse, error) {
	info, err := s.impl.Info(ctx)
	if err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	return infoToProto(info), nil
}

func (s *server) Build(req *pluginpb.BuildRequest, stream pluginpb.Builder_BuildServer) error {
	ctx := stream.Context()
	// The host's Credentials service is dialed at once: go-plugin's broker forgets a
	// connection offer that is not taken within seconds.
	conn, err := s.broker.Dial(req.GetCredentialsBrokerId())
	if err != nil {
		return status.Errorf(codes.Unavailable, "dialing the host's credentials service: %v", err)
	}
	defer conn.Close()
	creds := pluginpb.NewCredentialsClient(conn)

	var mu sync.Mutex // Send is not safe for concurrent use
	send := func(ev *pluginpb.BuildEvent) error {
		mu.Lock()
		defer mu.Unlock()
		return stream.Send(ev)
	}
	r := requestFromProto(req)
	r.Credentials = func(host string) (string, string, error) {
		resp, err := creds.Credentials(ctx, &pluginpb.CredentialsRequest{Host: host})
		if err != nil {
			return "", "", fmt.Errorf("asking the host for the credentials of %s: %w", host, err)
		}
		if resp.GetError() != "" {
			return "", "", errors.New(resp.GetError())
		}
		return resp.GetUsername(), resp.GetSecret(), nil
	}
	r.Progress = func(ss *client.SolveStatus) {
		for _, m := range ss.Marshal() {
			data, err := proto.Marshal(m)
			if err != nil {
				continue
			}
			// A failed send means the host went away; the build's context ends with it.
			_ = send(&pluginpb.BuildEvent{Event: &pluginpb.BuildEvent_Status{Status: data}})
		}
	}
	built, err := s.impl.Build(ctx, r)
	if err != nil {
		return send(&pluginpb.BuildEvent{Event: &pluginpb.BuildEvent_Error{Error: errorToProto(err)}})
	}
	return send(&pluginpb.BuildEvent{Event: &pluginpb.BuildEvent_Built{Built: &pluginpb.Built{
		Digest: built.Digest, Platforms: built.Platforms, Endpoint: built.Endpoint,
	}}})
}
