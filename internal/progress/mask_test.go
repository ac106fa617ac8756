package progress

import (
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"

	"github.com/imagebuilder/imagebuilder/internal/redact"
)

func TestMasker(t *testing.T) {
	const secret = "tok-3f9a-canary"
	var got []*client.SolveStatus
	m := NewMasker(redact.New(secret), func(s *client.SolveStatus) { got = append(got, s) })
	v1, v2 := digest.FromString("v1"), digest.FromString("v2")
	now := time.Now()
	orig := &client.SolveStatus{
		Vertexes: []*client.Vertex{{Digest: v1, Name: "[2/3] RUN echo " + secret, Started: &now}},
		Logs:     []*client.VertexLog{{Vertex: v1, Stream: 1, Data: []byte("line one\nsecret is tok-3f")}},
	}
	m.Status(orig)
	m.Status(&client.SolveStatus{Logs: []*client.VertexLog{
		{Vertex: v1, Stream: 1, Data: []byte("9a-canary\nand a partial " + secret[:4])},
		{Vertex: v2, Stream: 2, Data: []byte("other vertex " + secret)},
	}})
	m.Status(&client.SolveStatus{
		Vertexes: []*client.Vertex{{Digest: v1, Completed: &now, Error: "exit 1: " + secret}},
		Logs:     []*client.VertexLog{{Vertex: v1, Stream: 1, Data: []byte(secret[4:])}},
	})
	m.Close()

	var all strings.Builder
	for _, s := range got {
		for _, v := range s.Vertexes {
			all.WriteString(v.Name + "|" + v.Error + "\n")
		}
		for _, l := range s.Logs {
			all.Write(l.Data)
		}
	}
	if strings.Contains(all.String(), secret) || strings.Contains(all.String(), "tok-3f") {
		t.Fatalf("secret passed the masker:\n%s", all.String())
	}
	for _, want := range []string{"RUN echo " + redact.Mask, "line one\n", "secret is " + redact.Mask + "\n", "and a partial " + redact.Mask, "other vertex " + redact.Mask, "exit 1: " + redact.Mask} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("missing %q in:\n%s", want, all.String())
		}
	}
	if orig.Vertexes[0].Name != "[2/3] RUN echo "+secret {
		t.Error("the masker modified the event it was given")
	}
}
