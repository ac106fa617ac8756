package result

import (
	"fmt"
	"strings"
)

// Decisions of a family image: what the plan intends, and — once the run is over — what
// happened.
const (
	DecisionBuild        = "build"         // built (or, in a plan, to be built)
	DecisionSkip         = "skip"          // the registry already serves it with identical inputs
	DecisionPull         = "pull"          // an external image, resolved to a digest and recorded
	DecisionFailed       = "failed"        // its build failed
	DecisionParentFailed = "parent_failed" // not built: an ancestor failed (or, all-or-nothing, another image)
)

// Decisions lists every decision, in the order reports count them.
var Decisions = []string{DecisionBuild, DecisionSkip, DecisionPull, DecisionFailed, DecisionParentFailed}

// Report is what a family run did (or, in a plan, would do): one entry per image considered.
type Report struct {
	// Changed is true when any tag moved (or would move).
	Changed bool `json:"changed"`
	// DryRun is true for a plan: nothing was built or pushed.
	DryRun bool `json:"dry_run,omitempty"`
	// Images lists the family's selected images in build order, then the pulled references.
	Images []FamilyImage `json:"images"`
	// Failed lists every failure: an image whose build failed, or the run's own step.
	Failed []Failure `json:"failed"`
	// Totals counts the images by decision.
	Totals map[string]int `json:"totals"`
	// Builder names the first engine of the pool.
	Builder *Builder `json:"builder,omitempty"`
}

// FamilyImage is one image of a family run.
type FamilyImage struct {
	// Name is the image's name in the family file (the pulled reference for a pull).
	Name string `json:"name"`
	// Ref is REGISTRY/NAMESPACE/NAME:TAG (the reference as written for a pull).
	Ref string `json:"ref"`
	// Repository is REGISTRY/NAMESPACE/NAME.
	Repository string `json:"repository,omitempty"`
	// Tags is every tag of the image: its tag, then the extra tags.
	Tags []string `json:"tags"`
	// StageTags, with a stage_tag, are the tags pushed instead, one per tag of Tags.
	StageTags []string `json:"stage_tags,omitempty"`
	// Decision is build, skip, pull, failed or parent_failed.
	Decision string `json:"decision"`
	// Reason says why, in words.
	Reason string `json:"reason"`
	// Inputs is the inputs hash: the rendered Dockerfile, the context's files, build args,
	// target, platforms, labels, secrets by id and the parents' digests.
	Inputs string `json:"inputs,omitempty"`
	// Digest is what the tags point at: the index digest for several platforms.
	Digest string `json:"digest,omitempty"`
	// Platforms are the image's platforms, each with its manifest digest once known.
	Platforms []PlatformDigest `json:"platforms"`
	// Parents are the family images this one builds FROM (or copies from), with the digests
	// it used.
	Parents []Parent `json:"parents"`
	// Endpoint is the build engine that built it.
	Endpoint string `json:"endpoint,omitempty"`
	// Started and Finished bound its build (RFC 3339, nanoseconds); absent when not built.
	Started  string `json:"started,omitempty"`
	Finished string `json:"finished,omitempty"`
	// Attempts is how many times the build was tried (retries of transient errors, moves to
	// another engine when one was lost).
	Attempts int `json:"attempts"`
	// Log is the image's build log, with --logs DIR.
	Log string `json:"log,omitempty"`
	// Changed is true when a tag of this image moved (or would move).
	Changed bool `json:"changed"`
	// Previous maps each tag to the digest it pointed at before, when it existed.
	Previous map[string]string `json:"previous,omitempty"`
	// Error is the failure, for a failed image.
	Error string `json:"error,omitempty"`
}

// PlatformDigest is one platform of an image: its manifest digest and, once built, the engine
// that built it.
type PlatformDigest struct {
	Platform string `json:"platform"`
	Endpoint string `json:"endpoint,omitempty"`
	Digest   string `json:"digest,omitempty"`
}

// Parent is a family image another builds on.
type Parent struct {
	Name   string `json:"name"`
	Digest string `json:"digest,omitempty"`
}

// Count fills Totals from the images.
func (r *Report) Count() {
	r.Totals = map[string]int{}
	for _, d := range Decisions {
		r.Totals[d] = 0
	}
	for _, img := range r.Images {
		r.Totals[img.Decision]++
	}
}

// Summary is the one-line message of a family run.
func (r *Report) Summary() string {
	var parts []string
	for _, d := range Decisions {
		if n := r.Totals[d]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, d))
		}
	}
	verb := "family"
	if r.DryRun {
		verb = "family plan"
	}
	return fmt.Sprintf("%s: %s", verb, strings.Join(parts, ", "))
}

// PushedTags are the tags a build moves: the stage tags when staged, else the tags.
func (img FamilyImage) PushedTags() []string {
	if len(img.StageTags) > 0 {
		return img.StageTags
	}
	return img.Tags
}

// Digests maps every tag of every built or skipped image (REPOSITORY:TAG) to its digest.
func (r *Report) Digests() map[string]string {
	out := map[string]string{}
	for _, img := range r.Images {
		if img.Digest == "" || img.Decision == DecisionPull || img.Decision == DecisionFailed || img.Decision == DecisionParentFailed {
			continue
		}
		for _, t := range img.PushedTags() {
			out[img.Repository+":"+t] = img.Digest
		}
	}
	return out
}

// TagDiff is Result.TagDiff for the family's images that were built or skipped (or, in a plan,
// would be): every tag mapped to the digest it pointed at before and the one it points at now.
// Pulled references and images that failed are left out: their tags did not move.
func (r *Report) TagDiff() (before, after map[string]string) {
	var images []tagState
	for _, img := range r.Images {
		if img.Decision == DecisionBuild || img.Decision == DecisionSkip {
			images = append(images, tagState{img.Repository, img.PushedTags(), img.Previous, img.Digest})
		}
	}
	return tagDiff(r.DryRun, images)
}
