// Package registry does everything imagebuilder does against an OCI registry except the
// build's own push: BuildKit or the Docker daemon upload blobs and manifests, and this
// package then resolves digests, checks existence, reads platforms, moves tags (within a
// repository, across repositories and across registries), assembles multi-platform indexes,
// deletes tags and manifests, and checks push access without writing anything.
//
// It is a thin layer over github.com/google/go-containerregistry (pkg/v1/remote and
// pkg/v1/remote/transport); references are parsed by its name package, so Docker Hub names
// normalize the same way ("alpine", "docker.io/library/alpine" and
// "index.docker.io/library/alpine:latest" are one repository).
//
// # Client
//
// A [Client] is configured once with functional options and is safe for concurrent use.
// Options that contradict each other (two transports, two different credentials for one host,
// ...) make [New] fail instead of letting one silently win.
//
//	c, err := registry.New(
//		registry.WithCredentials("registry.example.com", registry.Credentials{Username: u, Password: p}),
//		registry.WithRetry(5, time.Second),
//		registry.WithLogger(logger),
//	)
//	d, err := c.Resolve(ctx, "registry.example.com/team/app:1.0")
//
// # Credentials
//
// For each registry host the client uses, in order: the credentials given with
// [WithCredentials] (the build params' target.registry username and password), else the
// fallback keychain — authn.DefaultKeychain unless [WithKeychain] replaces it — which reads the
// Docker config ($DOCKER_CONFIG/config.json or ~/.docker/config.json, then Podman's auth.json)
// and runs its credential helpers. [Client.Auth] reports what would be used for a host, so the
// builder can forward it to BuildKit's session auth provider.
//
// Secrets never appear in errors or logs: every error a Client returns has the passwords and
// tokens it knows of (explicit credentials, credentials read from the keychain, and every
// Authorization value it has sent, which includes bearer tokens obtained from a token server)
// replaced by redact.Mask (see [WithRedactor]), and the request log written to [WithLogger]
// holds only methods, URLs without query strings, status codes and durations. Errors keep their chain: use
// [errors.Is] with [ErrNotFound], [ErrUnauthorized] and [ErrUnsupported], or [errors.As]
// with *transport.Error for the HTTP status.
//
// Do not enable go-containerregistry's own debug log (logs.Debug) in production: it dumps
// response bodies verbatim, and a registry that quotes credentials in an error body would
// have them logged. Its Authorization headers and token responses are redacted.
//
// # Plain HTTP
//
// Loopback registries (127.0.0.0/8, localhost, ::1) are reached over plain HTTP, as Docker
// does; any other host needs [WithInsecure]. Every other request must use HTTPS: the client
// refuses plain HTTP to any host that is neither loopback nor marked insecure, which is
// stricter than go-containerregistry alone (it also falls back to HTTP for RFC 1918
// addresses).
//
// # Retries
//
// Requests that fail with 500, 502, 503 or 504, a connection reset, a broken pipe, an
// unexpected EOF or a network timeout are retried with exponential backoff ([WithRetry]);
// 4xx answers (401, 403, 404, 429, ...) are never retried.
//
// # Deleting
//
// [Client.Delete] with a digest reference deletes the manifest; on Docker Distribution this
// also removes every tag pointing at it. With a tag reference it removes only that tag: where
// the registry supports deleting tags (OCI distribution spec) directly, otherwise — Docker
// Distribution 2.x answers a tag DELETE with an error — by pointing the tag at a small
// placeholder manifest unique to this deletion and deleting that placeholder by digest,
// so other tags of the same image survive (the approach regclient takes). Before moving the
// tag it checks that the registry deletes manifests at all (a DELETE of a digest that cannot
// exist must answer 404), so a registry with deletes disabled leaves the tag untouched and
// the error wraps [ErrUnsupported].
package registry
