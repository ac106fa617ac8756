package regserve

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustRouter(t *testing.T, insecure []string, specs ...string) *Router {
	t.Helper()
	var rules []Upstream
	for _, s := range specs {
		u, err := ParseUpstream(s, insecure)
		if err != nil {
			t.Fatalf("ParseUpstream(%q): %v", s, err)
		}
		rules = append(rules, u)
	}
	r, err := NewRouter(rules)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRouterMatch(t *testing.T) {
	r := mustRouter(t, []string{"mirror.internal:5000"},
		"https://registry-1.docker.io",
		"library/=http://mirror.internal:5000",
		"hub/=http://mirror.internal:5000/library",
		"quay.io/=https://quay.io",
		"quay.io/team/=https://team.example/mirror/quay",
		"exact=http://127.0.0.1:5000/base/busybox",
	)
	for _, tc := range []struct {
		repo, upstream, remote string
	}{
		{"busybox", "https://registry-1.docker.io", "library/busybox"},              // Docker Hub's library/
		{"org/app", "https://registry-1.docker.io", "org/app"},                      // default rule
		{"library/busybox", "http://mirror.internal:5000", "busybox"},               // the prefix is stripped
		{"hub/busybox", "http://mirror.internal:5000/library", "library/busybox"},   // and the namespace prepended
		{"quay.io/coreos/etcd", "https://quay.io", "coreos/etcd"},                   // host-like first component
		{"quay.io/team/app", "https://team.example/mirror/quay", "mirror/quay/app"}, // longest prefix wins
		{"quay.io/teamwork/app", "https://quay.io", "teamwork/app"},                 // whole components only
		{"quay.io.evil/x", "https://registry-1.docker.io", "quay.io.evil/x"},        // not the quay.io/ prefix
		{"exact", "http://127.0.0.1:5000/base/busybox", "base/busybox"},             // a prefix naming one repository
		{"exact/sub", "http://127.0.0.1:5000/base/busybox", "base/busybox/sub"},     // and below it
		{"libraryx/busybox", "https://registry-1.docker.io", "libraryx/busybox"},    // component boundary
	} {
		u, remote, ok := r.Match(tc.repo)
		if !ok || u.URL != tc.upstream || remote != tc.remote {
			t.Errorf("Match(%q) = %q %q %v, want %q %q", tc.repo, u.URL, remote, ok, tc.upstream, tc.remote)
		}
	}

	// A prefix alone names nothing upstream: the repository is local only (the default rule
	// does not take it either).
	if u, remote, ok := r.Match("quay.io"); ok {
		t.Errorf("Match(quay.io) = %q %q, want no upstream", u.URL, remote)
	}

	// Without a default rule, unmatched repositories are local only.
	r = mustRouter(t, nil, "quay.io/=https://quay.io")
	for _, repo := range []string{"busybox", "quay.io", "quayio/x"} {
		if u, remote, ok := r.Match(repo); ok {
			t.Errorf("Match(%q) = %q %q, want no upstream", repo, u.URL, remote)
		}
	}
	if _, _, ok := (*Router)(nil).Match("x"); ok {
		t.Error("a nil router matched")
	}
}

func TestParseUpstream(t *testing.T) {
	for _, tc := range []struct {
		in, prefix, url string
	}{
		{"docker.io", "", "https://registry-1.docker.io"},
		{"https://index.docker.io/", "", "https://registry-1.docker.io"},
		{"http://127.0.0.1:5000", "", "http://127.0.0.1:5000"},
		{"http://localhost:5000/base/", "", "http://localhost:5000/base"},
		{"quay.io/=quay.io", "quay.io", "https://quay.io"},
		{"/library/=https://Mirror.Example/", "library", "https://mirror.example"},
		{"ghcr.io=https://ghcr.io/org", "ghcr.io", "https://ghcr.io/org"},
	} {
		u, err := ParseUpstream(tc.in, nil)
		if err != nil || u.Prefix != tc.prefix || u.URL != tc.url {
			t.Errorf("ParseUpstream(%q) = {%q %q} %v, want {%q %q}", tc.in, u.Prefix, u.URL, err, tc.prefix, tc.url)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"", "empty URL"},
		{"library/=", "empty URL"},
		{"Library/=https://x.io", `prefix "Library/" is not a repository path`},
		{"a//b=https://x.io", "not a repository path"},
		{"=https://x.io", "not a repository path"},
		{"ftp://x.io", `unsupported scheme "ftp"`},
		{"https://user:s3cret@x.io", "must not carry user information"},
		{"https://x.io?token=s3cret", "query"},
		{"http://registry.example.com", "plain http to registry.example.com"},
		{"https://x.io/Upper", `namespace "Upper"`},
		{"https://x.io:99999", "parsing registry host"},
	} {
		_, err := ParseUpstream(tc.in, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseUpstream(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseUpstream(%q) error shows the secret: %v", tc.in, err)
		}
	}
	// --upstream-insecure allows plain http to that host only.
	if _, err := ParseUpstream("http://registry.example.com", []string{"registry.example.com"}); err != nil {
		t.Errorf("insecure host refused: %v", err)
	}
	if _, err := ParseUpstream("http://registry.example.com:5000", []string{"registry.example.com"}); err == nil {
		t.Error("insecure host without its port allowed another port")
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(file, []byte("u:$2y$05$x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cfg     Config
		err     string // "" for valid
		warning string // a warning expected
	}{
		{"minimal", Config{Root: dir}, "", ""},
		{"no root", Config{}, "--root: a storage directory is required", ""},
		{"root is a file", Config{Root: file}, "not a directory", ""},
		{"bad listen", Config{Root: dir, Listen: "5000"}, `--listen "5000": not HOST:PORT`, ""},
		{"bad port", Config{Root: dir, Listen: "127.0.0.1:http2x"}, "bad port", ""},
		{"tls half", Config{Root: dir, TLSCert: file}, "--tls-cert and --tls-key go together", ""},
		{"missing htpasswd", Config{Root: dir, Htpasswd: filepath.Join(dir, "nope")}, "--htpasswd: ", ""},
		{"bad upstream", Config{Root: dir, Upstreams: []string{"library/=https://u:pw@x.io"}}, "--upstream library/=…: the URL must not carry user information", ""},
		{"two defaults", Config{Root: dir, Upstreams: []string{"https://a.io", "https://b.io"}}, "two default upstreams", ""},
		{"prefix twice", Config{Root: dir, Upstreams: []string{"q/=https://a.io", "q=https://b.io"}}, `prefix "q/" has two upstreams`, ""},
		{"wildcard open", Config{Root: dir, Listen: ":5000"}, "", "every interface without --htpasswd or TLS"},
		{"public open", Config{Root: dir, Listen: "192.0.2.1:5000"}, "", "192.0.2.1 without --htpasswd or TLS"},
		{"public password in clear", Config{Root: dir, Listen: "0.0.0.0:5000", Htpasswd: file}, "would send passwords in clear", ""},
		{"public tls no auth", Config{Root: dir, Listen: "0.0.0.0:5000", TLSCert: file, TLSKey: file}, "", "without --htpasswd: anyone who can reach it can push"},
		{"public tls auth", Config{Root: dir, Listen: "0.0.0.0:5000", TLSCert: file, TLSKey: file, Htpasswd: file}, "", ""},
		{"loopback v6", Config{Root: dir, Listen: "[::1]:0"}, "", ""},
	} {
		warnings, err := tc.cfg.Check()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), "pw@") {
			t.Errorf("%s: error shows the credentials: %v", tc.name, err)
		}
		joined := strings.Join(warnings, "\n")
		if tc.warning == "" && joined != "" || !strings.Contains(joined, tc.warning) {
			t.Errorf("%s: warnings %q, want %q", tc.name, joined, tc.warning)
		}
	}
}
