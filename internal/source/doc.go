// Package source turns a build-params source into a build-context directory and a Dockerfile
// path, inside a workspace directory that the caller creates and removes.
//
// The four source kinds:
//
//   - git (source.git_repo): cloned with go-git into the workspace. A branch, a tag or HEAD is
//     fetched shallow (depth 1, that ref only). A full commit id is fetched shallow when the
//     server allows fetching commits by id, and otherwise, like an abbreviated id, through a
//     full clone that is then resolved. Submodules are checked out recursively. Credentials go
//     through go-git's auth methods, never into a URL; credentials written into an http(s) URL
//     are taken out of it and used the same way. Submodules on another host get no credentials,
//     and local (file) submodules are only followed when the repository itself is local.
//   - dockerfile (source.dockerfile, optionally with source.build_context): the Dockerfile is
//     downloaded over http(s) to a directory of its own, outside the build context, so the build
//     uses it even when the context holds a Dockerfile too. Alone, the context is an empty
//     directory; with build_context, a git repository cloned as above (and its subdir).
//   - tar (source.tar): a plain or gzip tarball from a local path or an http(s) URL, streamed
//     and extracted safely: absolute names, ".." escapes, links leading out of the archive,
//     devices and fifos are refused, total size and entry count are capped, and every write goes
//     through an [os.Root] so nothing can land outside the extraction directory.
//   - local (source.local): a directory used in place, not copied.
//
// Dockerfile, workdir and subdir paths must stay inside their root, also after following
// symlinks. The context directory is handed to BuildKit as it is, so .dockerignore applies as
// users expect. Results carry facts for the caller (URL without credentials, resolved commit,
// ref and clean state of git sources, sha256 of downloaded files); passwords never appear in
// results, errors or log lines.
package source
