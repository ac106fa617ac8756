package registry

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// hostPattern is a registry host as Docker's reference grammar has it (domain components of
// letters, digits and inner hyphens, or a bracketed IPv6 address), lower-cased, with an
// optional port.
var hostPattern = regexp.MustCompile(`^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$`)

// IsLoopback reports whether host ("host", "host:port", "[::1]:5000") names a loopback
// address: 127.0.0.0/8, ::1 or localhost. Such registries are reached over plain HTTP.
func IsLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(h)
	if err != nil {
		return false
	}
	return addr.Unmap().IsLoopback()
}

// Host returns the normalized registry host of s, which may be a bare host
// ("registry.example.com:5000"), carry a scheme ("https://registry.example.com/") or a
// namespace path ("ghcr.io/team", as in the build params' target.registry.url). Docker Hub's
// aliases normalize like go-containerregistry's name package: "docker.io" and
// "https://index.docker.io/v1/" both give "index.docker.io".
func Host(s string) (string, error) {
	h := strings.TrimSpace(s)
	if scheme, rest, ok := strings.Cut(h, "://"); ok {
		switch strings.ToLower(scheme) {
		case "http", "https":
			h = rest
		default:
			if strings.ContainsFunc(scheme, func(r rune) bool { return !isSchemeRune(r) }) {
				// Not a scheme: do not echo what may hold user information.
				return "", errors.New("parsing registry host: malformed address")
			}
			return "", fmt.Errorf("parsing registry host: unsupported scheme %q", scheme)
		}
	}
	h, _, _ = strings.Cut(h, "/")
	if strings.Contains(h, "@") {
		// Do not echo the input: it probably holds a password.
		return "", errors.New("parsing registry host: it must not contain user information (user:password@)")
	}
	if h == "" {
		return "", errors.New("parsing registry host: empty")
	}
	h = strings.ToLower(h)
	if !hostPattern.MatchString(h) {
		return "", fmt.Errorf("parsing registry host %q: not a host name or IP address with an optional port", h)
	}
	reg, err := name.NewRegistry(h, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("parsing registry host %q: %w", h, err)
	}
	return reg.RegistryStr(), nil
}

func isSchemeRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '+' || r == '-' || r == '.'
}
