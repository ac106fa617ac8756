// Package dockerfile reads Dockerfiles with BuildKit's own parser and
// rewrites their base images for image variants, without touching anything
// else.
//
// # Stages and images
//
// [Parse] lists the stages (one per FROM) with the base as written and as
// resolved, and the external images the file depends on. Resolving works as
// in BuildKit: a FROM argument is expanded with the global ARGs (those before
// the first FROM, their defaults overridden by the build args) and the
// built-in platform ARGs (BUILDPLATFORM, TARGETARCH, ...; they take the
// platform this program runs on unless the build args set them). A base that
// names an earlier stage is a stage reference; "scratch" is an empty file
// system, neither a stage nor an image. The file is assumed to use the
// Dockerfile syntax BuildKit ships (a "# syntax=" directive is kept, not
// followed).
//
// # Injecting bases
//
// [Inject] writes a rewritten copy; the caller stores it in its workspace and
// builds that, so the user's file is never modified. An [Injection] has two
// ways of choosing what to replace:
//
//   - Base (SODALITE's "base") replaces the base of the first stage built
//     FROM an image: stages FROM an earlier stage and FROM scratch are
//     skipped. In a multi-stage build this is usually the toolchain stage
//     ("FROM golang:1.16 AS build"). If no stage is built from an image it is
//     an error.
//   - Bases maps keys to references. A key is a stage name ("build",
//     case-insensitive), a stage index ("0"), or, when it is neither, an image
//     reference: it then matches every FROM that names it as written
//     ("${BASE}", "golang:1.16"), as resolved, or as the same image once
//     normalized ("golang" matches "docker.io/library/golang:latest"). A key
//     that matches nothing is an error listing the stages, before anything
//     is built.
//
// Both may be given; giving one stage two different replacements (through
// Base and a key, or through two keys) is an error. Replacements must be
// valid image references (github.com/distribution/reference) and must not be
// the name of a stage before the one they replace, which BuildKit would take
// for that stage.
//
// Only the bytes of the image argument of a FROM are replaced. Everything
// else stays byte for byte as it was: --platform flags, "AS name", comments
// (also ones mentioning FROM), blank lines, line continuations, heredocs,
// parser directives (including "# escape=`"), the case of instructions and
// CRLF line endings. Only the instructions BuildKit
// parses as FROM are considered, so text in comments and heredocs is never
// mistaken for one. An image argument split over several lines by line
// continuations is joined onto its first line.
//
// # ARG-based FROM
//
// When a FROM argument is exactly $NAME or ${NAME} and NAME is a global ARG,
// the new base is given through that ARG: its default is changed (or
// "=REF" added when it has none) and NAME=REF is returned in
// [Result.BuildArgs], which the build must pass, so the FROM line itself is
// not touched. If the caller's build args already set NAME, Inject fails
// rather than let one silently override the other. If changing NAME would
// change anything else (another FROM that uses it, directly or through
// another ARG's default, and is not being replaced, or two replaced stages
// that share NAME but get different references), the FROM argument of each
// replaced stage is rewritten instead, which leaves NAME and every other
// stage as they were. FROM arguments that mix variables with other text
// (like "golang:${GO_VERSION}") are rewritten as a whole. Stages that redeclare
// NAME with "ARG NAME" see its new default. A FROM that resolves to nothing
// (an ARG with no default and no build arg) counts as built FROM an image.
//
// Every rewritten file is parsed again and checked to resolve to the
// requested bases, with and without [Result.BuildArgs], before it is
// returned.
package dockerfile
