package registry_test

import (
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/registry"
)

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.0.0.1:5000", true},
		{"127.1.2.3:5000", true},
		{"localhost", true},
		{"LOCALHOST:5000", true},
		{"::1", true},
		{"[::1]:5000", true},
		{"[::ffff:127.0.0.1]:5000", true},
		{"128.0.0.1:5000", false},
		{"10.0.0.1:5000", false},
		{"192.168.1.1", false},
		{"localhost.example.com", false},
		{"foo.localhost:5000", false},
		{"docker.io", false},
		{"", false},
		{"[::2]:5000", false},
	}
	for _, tt := range tests {
		if got := registry.IsLoopback(tt.host); got != tt.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestRegistryHost(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "docker.io", want: "index.docker.io"},
		{in: "index.docker.io", want: "index.docker.io"},
		{in: "https://index.docker.io/v1/", want: "index.docker.io"},
		{in: "docker.io/library", want: "index.docker.io"},
		{in: "127.0.0.1:5000", want: "127.0.0.1:5000"},
		{in: "http://127.0.0.1:5000/team/sub", want: "127.0.0.1:5000"},
		{in: " ghcr.io/team ", want: "ghcr.io"},
		{in: "Registry.Example.COM:443", want: "registry.example.com:443"},
		{in: "[::1]:5000", want: "[::1]:5000"},
		{in: "", wantErr: "empty"},
		{in: "https://", wantErr: "empty"},
		{in: "ftp://example.com", wantErr: "unsupported scheme"},
		{in: "user:hunter2@example.com", wantErr: "user information"},
		{in: "https://user:hunter2@example.com/x", wantErr: "user information"},
		{in: "exa mple.com", wantErr: "parsing registry host"},
	}
	for _, tt := range tests {
		got, err := registry.Host(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Host(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Host(%q): error leaks the password: %v", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Host(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// userInfoMsg is Host's fixed error for input with user information.
const userInfoMsg = "parsing registry host: it must not contain user information (user:password@)"

func FuzzRegistryHost(f *testing.F) {
	for _, s := range []string{"docker.io", "https://index.docker.io/v1/", "127.0.0.1:5000/team", "[::1]:5000", "u:p@h", "https://user:hunter2@example.com/x", "ftp://x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := registry.Host(s)
		if err != nil {
			// What stands before an "@" may be a password: it must not be echoed.
			if i := strings.LastIndex(s, "@"); i >= 0 {
				_, rest, found := strings.Cut(s[:i], "://")
				if !found {
					rest = s[:i]
				}
				if len(rest) >= 6 && strings.Contains(err.Error(), rest) && !strings.Contains(userInfoMsg, rest) {
					t.Errorf("error echoes the user information %q: %v", rest, err)
				}
			}
			return
		}
		if got == "" || strings.ContainsAny(got, "/@ ") {
			t.Errorf("Host(%q) = %q: not a bare host", s, got)
		}
		again, err := registry.Host(got)
		if err != nil || again != got {
			t.Errorf("Host(%q) = %q, but Host(%q) = %q, %v", s, got, got, again, err)
		}
		_ = registry.IsLoopback(got)
	})
}
