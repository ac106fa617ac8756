package regserve

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/distribution/reference"

	"github.com/imagebuilder/imagebuilder/internal/registry"
)

// Upstream is one --upstream rule: repositories of this registry whose path starts with
// Prefix (whole components; "" is the default rule, which matches every repository) are
// pulled through from the registry at URL, under Namespace.
type Upstream struct {
	// Prefix is the repository path prefix this rule claims, without a trailing slash; "" for
	// the default rule.
	Prefix string `json:"prefix"`
	// URL is the upstream as shown: scheme, host and namespace path, never credentials.
	URL string `json:"url"`

	base      string // scheme://host, what the proxy talks to
	host      string // host[:port]
	namespace string // repository path prepended upstream ("" for none)
	dockerHub bool   // one-component names get "library/" as Docker Hub wants
}

// Host is the upstream registry's host[:port].
func (u Upstream) Host() string { return u.host }

// component is one path component of a repository name (the OCI distribution grammar).
var component = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// validPath reports whether p is a non-empty slash-separated list of repository components.
func validPath(p string) bool {
	if p == "" {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if !component.MatchString(c) {
			return false
		}
	}
	return true
}

// ParseUpstream parses one --upstream value: "URL" (the default rule) or "PREFIX=URL". URL
// is http(s)://HOST[:PORT][/NAMESPACE] or a bare HOST[/NAMESPACE] (https); "docker.io" means
// Docker Hub's registry endpoint. Plain http is accepted for loopback hosts and for hosts in
// insecure; user information is refused (credentials come from the Docker config).
func ParseUpstream(s string, insecure []string) (Upstream, error) {
	var u Upstream
	raw := strings.TrimSpace(s)
	if i := strings.Index(raw, "="); i >= 0 && !strings.Contains(raw[:i], "://") {
		given := raw[:i]
		u.Prefix, raw = strings.Trim(given, "/"), raw[i+1:]
		if !validPath(u.Prefix) {
			return Upstream{}, fmt.Errorf("prefix %q is not a repository path (lowercase components such as library/ or quay.io/)", given)
		}
	}
	if raw == "" {
		return Upstream{}, errors.New("empty URL")
	}
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	pu, err := url.Parse(raw)
	if err != nil {
		// url.Parse errors quote the input, which may hold a password.
		return Upstream{}, errors.New("malformed URL")
	}
	if pu.User != nil {
		return Upstream{}, errors.New("the URL must not carry user information (credentials come from the Docker config)")
	}
	if pu.Scheme != "http" && pu.Scheme != "https" {
		return Upstream{}, fmt.Errorf("unsupported scheme %q (http or https)", pu.Scheme)
	}
	if pu.RawQuery != "" || pu.Fragment != "" || pu.Opaque != "" {
		return Upstream{}, errors.New("the URL must not have a query or a fragment")
	}
	host, err := registry.Host(pu.Host)
	if err != nil {
		return Upstream{}, err
	}
	if p := pu.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return Upstream{}, fmt.Errorf("parsing registry host %q: port out of range", host)
		}
	}
	switch host {
	case "index.docker.io", "docker.io", "registry-1.docker.io":
		host, u.dockerHub = "registry-1.docker.io", true
	}
	u.host = host
	if u.namespace = strings.Trim(pu.Path, "/"); u.namespace != "" && !validPath(u.namespace) {
		return Upstream{}, fmt.Errorf("namespace %q is not a repository path", u.namespace)
	}
	if pu.Scheme == "http" && !registry.IsLoopback(host) && !contains(insecure, host) {
		return Upstream{}, fmt.Errorf("plain http to %s: only loopback upstreams may use http, unless given with --upstream-insecure %s", host, host)
	}
	u.base = pu.Scheme + "://" + host
	u.URL = u.base
	if u.namespace != "" {
		u.URL += "/" + u.namespace
	}
	return u, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(strings.TrimSpace(x), s) {
			return true
		}
	}
	return false
}

// Router picks the upstream of a repository: the rule with the longest prefix that matches
// whole path components wins; the default rule (no prefix) matches what no other does.
type Router struct {
	rules []Upstream // longest prefix first
}

// NewRouter checks that no prefix is given twice.
func NewRouter(rules []Upstream) (*Router, error) {
	seen := map[string]bool{}
	for _, r := range rules {
		if seen[r.Prefix] {
			if r.Prefix == "" {
				return nil, errors.New("two default upstreams (--upstream URL without PREFIX=): give one, and PREFIX=URL for the others")
			}
			return nil, fmt.Errorf("prefix %q has two upstreams", r.Prefix+"/")
		}
		seen[r.Prefix] = true
	}
	sorted := append([]Upstream(nil), rules...)
	sort.SliceStable(sorted, func(i, j int) bool { return len(sorted[i].Prefix) > len(sorted[j].Prefix) })
	return &Router{rules: sorted}, nil
}

// Upstreams lists the rules, longest prefix first.
func (r *Router) Upstreams() []Upstream { return append([]Upstream(nil), r.rules...) }

// Match returns the rule for the repository repo (a path of this registry) and the name the
// repository has upstream: repo without the rule's prefix, under the rule's namespace (and
// under library/ for a one-component name on Docker Hub). ok is false when no rule matches,
// or when what is left is no repository name upstream.
func (r *Router) Match(repo string) (u Upstream, remote string, ok bool) {
	if r == nil {
		return Upstream{}, "", false
	}
	for _, rule := range r.rules {
		rest, matched := strings.CutPrefix(repo, rule.Prefix)
		if !matched || (rule.Prefix != "" && rest != "" && rest[0] != '/') {
			continue
		}
		remote = strings.Trim(rule.namespace+"/"+strings.TrimPrefix(rest, "/"), "/")
		if remote == "" {
			return Upstream{}, "", false
		}
		if rule.dockerHub && !strings.Contains(remote, "/") {
			remote = "library/" + remote
		}
		if _, err := reference.WithName(remote); err != nil {
			return Upstream{}, "", false // a name the upstream cannot have (an upper-case host part under a namespace)
		}
		return rule, remote, true
	}
	return Upstream{}, "", false
}
