package regserve

import (
	"net/url"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

// FuzzParseUpstream: ParseUpstream never panics, never repeats user information it refused,
// and what it accepts routes every repository it matches to a valid upstream name under the
// rule's namespace.
func FuzzParseUpstream(f *testing.F) {
	for _, s := range []string{
		"docker.io", "https://quay.io", "quay.io/=https://quay.io", "library/=http://127.0.0.1:5000/library",
		"a/b=https://u:p@x.io", "http://[::1]:5000/ns", "=x", "x=", "https://x.io?t=1", "a//b=x.io",
	} {
		f.Add(s, "quay.io/coreos/etcd")
	}
	f.Fuzz(func(t *testing.T, spec, repo string) {
		u, err := ParseUpstream(spec, nil)
		if err != nil {
			if i := strings.Index(spec, "://"); i >= 0 {
				if pu, perr := url.Parse(spec[strings.Index(spec, "=")+1:]); perr == nil && pu.User != nil {
					if p, ok := pu.User.Password(); ok && len(p) > 3 && strings.Contains(err.Error(), p) {
						t.Fatalf("error shows the password %q: %v", p, err)
					}
				}
			}
			return
		}
		if strings.Contains(u.URL, "@") || (u.Prefix != "" && !validPath(u.Prefix)) {
			t.Fatalf("accepted %q as %+v", spec, u)
		}
		r, err := NewRouter([]Upstream{u})
		if err != nil {
			t.Fatal(err)
		}
		got, remote, ok := r.Match(repo)
		if !ok {
			return
		}
		if got.URL != u.URL {
			t.Fatalf("Match(%q) picked %q of one rule %q", repo, got.URL, u.URL)
		}
		if u.Prefix != "" && repo != u.Prefix && !strings.HasPrefix(repo, u.Prefix+"/") {
			t.Fatalf("rule %q matched %q across a component", u.Prefix, repo)
		}
		if _, err := reference.WithName(remote); err != nil {
			t.Fatalf("%q routes to an invalid upstream name %q: %v", repo, remote, err)
		}
		if u.namespace != "" && !strings.HasPrefix(remote, u.namespace+"/") && remote != u.namespace {
			t.Fatalf("remote %q is not under the namespace %q", remote, u.namespace)
		}
	})
}
