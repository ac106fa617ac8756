// Package result defines the facts a build reports — written once here and printed by the CLI,
// returned by the Ansible modules and exposed as TOSCA attributes. Nothing in it may carry a
// credential: URLs are stripped of userinfo before they get here.
package result

import (
	"fmt"
	"strings"
)

// Steps of a build, named in failures.
const (
	StepSource = "source"
	StepInject = "inject"
	StepBuild  = "build"
	StepPush   = "push"
	StepTag    = "tag"
	StepCheck  = "check" // the engine and the registry answer, the credentials are accepted
)

// Result is what one build request did (or, in a dry run, would do).
type Result struct {
	// Changed is true when any tag of the request moved (or would move).
	Changed bool `json:"changed"`
	// DryRun is true when nothing was built or pushed.
	DryRun bool `json:"dry_run,omitempty"`
	// Images lists every image of the request, in request order.
	Images []Image `json:"images"`
	// Source describes what was built.
	Source *Source `json:"source,omitempty"`
	// Builder names the build engine the request ran on (set once it was chosen).
	Builder *Builder `json:"builder,omitempty"`
	// Failed is set when the request failed; then no tag of the request moved.
	Failed *Failure `json:"failed,omitempty"`
}

// Image is one image of the request.
type Image struct {
	// Ref is REGISTRY/IMAGE:TAG.
	Ref string `json:"ref"`
	// Image and Tag as requested.
	Image string `json:"image"`
	Tag   string `json:"tag"`
	// Tags is every tag pushed: Tag, then the extra tags.
	Tags []string `json:"tags"`
	// StageTags, with a stage_tag, are the tags actually pushed, one per tag of Tags (the same
	// order); the final tags move only with imagebuilder promote.
	StageTags []string `json:"stage_tags,omitempty"`
	// Repository is REGISTRY/IMAGE.
	Repository string `json:"repository"`
	// Digest is what the registry serves for Ref: the manifest digest for one platform, the
	// index digest for several. Empty in a dry run and when the build failed.
	Digest string `json:"digest,omitempty"`
	// Platforms built (or to be built), os/arch[/variant].
	Platforms []string `json:"platforms"`
	// PlatformBuilds lists each platform's build: the engine that built it and its manifest
	// digest (a pool with native per-platform engines builds the platforms apart and joins
	// them into one index).
	PlatformBuilds []PlatformDigest `json:"platform_builds,omitempty"`
	// Base is the first base replaced in this variant, or null.
	Base *BaseChange `json:"base"`
	// Bases lists every replaced base when there are several.
	Bases []BaseChange `json:"bases,omitempty"`
	// Changed is true when a tag of this image moved (or would move).
	Changed bool `json:"changed"`
	// Previous maps each tag to the digest it pointed at before, when it existed.
	Previous map[string]string `json:"previous,omitempty"`
}

// BaseChange is one injected base image.
type BaseChange struct {
	Stage string `json:"stage"` // stage name, or its index when unnamed
	From  string `json:"from"`
	To    string `json:"to"`
}

// Source describes the fetched source.
type Source struct {
	Kind   string `json:"kind"`             // git, dockerfile, tar, local
	URL    string `json:"url,omitempty"`    // without credentials
	Commit string `json:"commit,omitempty"` // 40 hex, for git sources and build contexts
	Ref    string `json:"ref,omitempty"`    // resolved ref name
	Clean  *bool  `json:"clean,omitempty"`  // git work tree state
}

// Builder is the build engine of a request.
type Builder struct {
	Kind     string `json:"kind"`     // docker or buildkit
	Endpoint string `json:"endpoint"` // its address, without credentials (no user, no password)
}

// Failure names what failed.
type Failure struct {
	Image string `json:"image,omitempty"` // the failing image's Ref ("" when not about one image)
	Step  string `json:"step"`
	Error string `json:"error"`
}

// PushedTags are the tags a build moves: the stage tags when staged, else the tags.
func (img Image) PushedTags() []string {
	if len(img.StageTags) > 0 {
		return img.StageTags
	}
	return img.Tags
}

// Digests maps every pushed reference (each tag, or each stage tag) to its digest.
func (r *Result) Digests() map[string]string {
	out := map[string]string{}
	for _, img := range r.Images {
		if img.Digest == "" {
			continue
		}
		for _, t := range img.PushedTags() {
			out[img.Repository+":"+t] = img.Digest
		}
	}
	return out
}

// Summary is the one-line message of a successful request.
func (r *Result) Summary() string {
	var changed []string
	for _, img := range r.Images {
		if img.Changed {
			changed = append(changed, img.Ref)
		}
	}
	n := len(r.Images)
	switch {
	case r.DryRun && len(changed) > 0:
		return fmt.Sprintf("would build and push %d of %d image(s): %s", len(changed), n, strings.Join(changed, ", "))
	case len(changed) > 0:
		return fmt.Sprintf("built and pushed %d of %d image(s): %s", len(changed), n, strings.Join(changed, ", "))
	}
	return fmt.Sprintf("all %d image(s) up to date", n)
}

// RebuiltMarker is what TagDiff says a tag will point at after a dry run that would rebuild it.
const RebuiltMarker = "(rebuilt; digest known after the build)"

// TagDiff maps every tag of the request (REGISTRY/IMAGE:TAG) to the digest it pointed at before
// (tags that did not exist are absent) and the digest it points at now (in a dry run, the
// digest it keeps, or RebuiltMarker).
func (r *Result) TagDiff() (before, after map[string]string) {
	images := make([]tagState, len(r.Images))
	for i, img := range r.Images {
		images[i] = tagState{img.Repository, img.PushedTags(), img.Previous, img.Digest}
	}
	return tagDiff(r.DryRun, images)
}

// tagState is what TagDiff reads of one image.
type tagState struct {
	repository string
	tags       []string
	previous   map[string]string
	digest     string
}

func tagDiff(dryRun bool, images []tagState) (before, after map[string]string) {
	before, after = map[string]string{}, map[string]string{}
	for _, img := range images {
		for _, tag := range img.tags {
			ref := img.repository + ":" + tag
			if d := img.previous[tag]; d != "" {
				before[ref] = d
			}
			switch {
			case img.digest != "":
				after[ref] = img.digest
			case dryRun:
				after[ref] = RebuiltMarker
			}
		}
	}
	return before, after
}
