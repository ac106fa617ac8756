package plugin

import (
	"errors"

	"github.com/imagebuilder/imagebuilder/internal/builder"
	"github.com/imagebuilder/imagebuilder/internal/builder/plugin/pluginpb"
)

// The conversions between builder's plain data and the contract's messages. Callbacks do not
// cross: Credentials goes over the broker, Progress as the Build stream, and Publisher not at
// all (a plugin pushes by itself).

func requestToProto(r builder.Request, brokerID uint32) *pluginpb.BuildRequest {
	m := &pluginpb.BuildRequest{
		ContextDir:          r.ContextDir,
		Dockerfile:          r.Dockerfile,
		Platforms:           r.Platforms,
		BuildArgs:           r.BuildArgs,
		Target:              r.Target,
		Labels:              r.Labels,
		NoCache:             r.NoCache,
		Pull:                r.Pull,
		Repository:          r.Repository,
		Insecure:            r.Insecure,
		Registries:          r.Registries,
		Secrets:             r.Secrets,
		CredentialsBrokerId: brokerID,
	}
	for _, f := range r.SSH {
		m.Ssh = append(m.Ssh, &pluginpb.SSHForward{Id: f.ID, Paths: f.Paths})
	}
	return m
}

func requestFromProto(m *pluginpb.BuildRequest) builder.Request {
	r := builder.Request{
		ContextDir: m.GetContextDir(),
		Dockerfile: m.GetDockerfile(),
		Platforms:  m.GetPlatforms(),
		BuildArgs:  m.GetBuildArgs(),
		Target:     m.GetTarget(),
		Labels:     m.GetLabels(),
		NoCache:    m.GetNoCache(),
		Pull:       m.GetPull(),
		Repository: m.GetRepository(),
		Insecure:   m.GetInsecure(),
		Registries: m.GetRegistries(),
		Secrets:    m.GetSecrets(),
	}
	for _, f := range m.GetSsh() {
		r.SSH = append(r.SSH, builder.SSHForward{ID: f.GetId(), Paths: f.GetPaths()})
	}
	return r
}

func infoToProto(i builder.Info) *pluginpb.InfoResponse {
	return &pluginpb.InfoResponse{
		Kind:            string(i.Kind),
		Endpoint:        i.Endpoint,
		NativePlatform:  i.NativePlatform,
		Platforms:       i.Platforms,
		MultiPlatform:   i.MultiPlatform,
		BuildkitVersion: i.BuildKitVersion,
		DaemonVersion:   i.DaemonVersion,
		ApiVersion:      i.APIVersion,
		HostNetwork:     i.HostNetwork,
		ContainerdStore: i.ContainerdStore,
		Version:         i.Version,
	}
}

func infoFromProto(m *pluginpb.InfoResponse) builder.Info {
	return builder.Info{
		Kind:            builder.Kind(m.GetKind()),
		Endpoint:        m.GetEndpoint(),
		NativePlatform:  m.GetNativePlatform(),
		Platforms:       m.GetPlatforms(),
		MultiPlatform:   m.GetMultiPlatform(),
		BuildKitVersion: m.GetBuildkitVersion(),
		DaemonVersion:   m.GetDaemonVersion(),
		APIVersion:      m.GetApiVersion(),
		HostNetwork:     m.GetHostNetwork(),
		ContainerdStore: m.GetContainerdStore(),
		Version:         m.GetVersion(),
	}
}

// errorToProto keeps what a *builder.Error says; any other error is a failure of the build
// step.
func errorToProto(err error) *pluginpb.BuildError {
	var be *builder.Error
	if !errors.As(err, &be) {
		return &pluginpb.BuildError{Step: string(builder.StepBuild), Message: err.Error()}
	}
	m := &pluginpb.BuildError{
		Step:       string(be.Step),
		Repository: be.Repository,
		Platforms:  be.Platforms,
		Endpoint:   be.Endpoint,
		Vertex:     be.Vertex,
		Output:     be.Output,
	}
	if be.Err != nil {
		m.Message = be.Err.Error()
	}
	return m
}

// knownSteps are the steps a plugin may report; anything else is reported as build.
var knownSteps = []builder.Step{builder.StepConnect, builder.StepValidate, builder.StepBuild, builder.StepPush, builder.StepIndex}

func errorFromProto(m *pluginpb.BuildError) *builder.Error {
	step := builder.StepBuild
	for _, s := range knownSteps {
		if string(s) == m.GetStep() {
			step = s
		}
	}
	msg := m.GetMessage()
	if msg == "" {
		msg = "the plugin reported a failure without a message"
	}
	return &builder.Error{
		Step:       step,
		Repository: m.GetRepository(),
		Platforms:  m.GetPlatforms(),
		Endpoint:   m.GetEndpoint(),
		Vertex:     m.GetVertex(),
		Output:     m.GetOutput(),
		Err:        errors.New(msg),
	}
}
