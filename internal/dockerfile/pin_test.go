package dockerfile

import (
	"strings"
	"testing"
)

func TestPin(t *testing.T) {
	df := `ARG BASE=reg/ns/base:1
FROM ${BASE} AS build
RUN --mount=type=bind,from=reg/ns/tools:1,target=/t true
COPY --from=reg/ns/assets:1 /a /a
FROM reg/ns/base:1
COPY --from=build /x /x
COPY --from=reg/ns/assets:10 /b /b
`
	pins := map[string]string{
		"reg/ns/base:1":   "reg/ns/base@sha256:" + strings.Repeat("a", 64),
		"reg/ns/tools:1":  "reg/ns/tools@sha256:" + strings.Repeat("b", 64),
		"reg/ns/assets:1": "reg/ns/assets@sha256:" + strings.Repeat("c", 64),
		"unused:1":        "unused@sha256:" + strings.Repeat("d", 64),
	}
	res, err := Pin([]byte(df), pins, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(res.Dockerfile, res.BuildArgs)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(f.ExternalImages(), " ")
	want := pins["reg/ns/base:1"] + " " + pins["reg/ns/tools:1"] + " " + pins["reg/ns/assets:1"] + " reg/ns/assets:10"
	if got != want {
		t.Errorf("images after pinning:\n got %s\nwant %s\n%s", got, want, res.Dockerfile)
	}
	if !strings.Contains(string(res.Dockerfile), "COPY --from=build /x /x") {
		t.Errorf("a stage reference was rewritten:\n%s", res.Dockerfile)
	}
}
