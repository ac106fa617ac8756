// Package regserve is the embedded OCI registry of `imagebuilder registry serve`: distribution's
// registry (github.com/distribution/distribution/v3) as a library, storing in a directory, for
// a buildset. Images pushed to it are served from it; reads of anything it does not hold fall
// through to an upstream chosen by repository prefix ([Router]) and are cached.
//
// The pieces, outermost first:
//
//   - extensions (ociext.go): what distribution v3.1.2 lacks of the OCI distribution spec 1.1,
//     in front of its handlers: the referrers API and OCI-Subject, sha512 digests, monolithic
//     POST uploads and anonymous mounts.
//   - distribution's application (handlers, htpasswd access controller, filesystem storage).
//   - namespace (namespace.go): a registry middleware wrapping the storage; writes are local,
//     reads the storage cannot answer go to one of distribution's pull-through proxies, one per
//     upstream, made on first use, caching into the same storage under this registry's names.
//
// [New] checks a [Config] and listens; [Server.Serve] answers; [Server.Shutdown] drains and
// removes unfinished uploads; [Run] does all three around a context.
package regserve
