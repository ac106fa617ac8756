package result

// StepDelete names the deletion of stage tags (promote) and stale tags (sweep) in failures.
const StepDelete = "delete"

// Promotion is what imagebuilder promote did (or, in a dry run, would do).
type Promotion struct {
	// Changed is true when a tag moved or a stage tag was deleted (or would be).
	Changed bool `json:"changed"`
	DryRun  bool `json:"dry_run,omitempty"`
	// Images are the destination repositories, in request order.
	Images []PromotedImage `json:"images"`
	// Failed is set when the promote failed; when it failed moving tags, no final tag moved.
	Failed *Failure `json:"failed,omitempty"`
	// Swept, with promote --sweep, is the sweep of each destination repository after the
	// promote.
	Swept []*Sweep `json:"swept,omitempty"`
}

// PromotedImage is one destination repository of a promote.
type PromotedImage struct {
	// Repository is REGISTRY/IMAGE.
	Repository string `json:"repository"`
	// Promoted are its final tags, each with the staged tag it came from.
	Promoted []PromotedTag `json:"promoted"`
	// Deleted are the stage tags removed after every final tag moved (REPOSITORY:TAG).
	Deleted []string `json:"deleted"`
	// Changed is true when a tag of this repository moved or was deleted (or would be).
	Changed bool `json:"changed"`
}

// PromotedTag is one final tag of a promote.
type PromotedTag struct {
	// From is the staged reference (REPOSITORY:STAGE_TAG, or REPOSITORY@DIGEST).
	From string `json:"from"`
	// To is the final reference, REPOSITORY:TAG.
	To string `json:"to"`
	// Digest is what From served, and what To serves after the promote.
	Digest string `json:"digest"`
	// Previous is the digest To served before ("" when the tag did not exist).
	Previous string `json:"previous,omitempty"`
	// Changed is false when To already served Digest.
	Changed bool `json:"changed"`
}

// Sweep is what imagebuilder sweep did (or would do) in one repository.
type Sweep struct {
	Changed    bool       `json:"changed"`
	DryRun     bool       `json:"dry_run,omitempty"`
	Repository string     `json:"repository"`
	Deleted    []SweptTag `json:"deleted"`
	Kept       []SweptTag `json:"kept"`
	Failed     *Failure   `json:"failed,omitempty"`
}

// SweptTag is one tag a sweep looked at.
type SweptTag struct {
	Tag    string `json:"tag"`
	Digest string `json:"digest,omitempty"`
	// Created is the image's creation time (RFC 3339), from its config, else from the
	// org.opencontainers.image.created label; "" when it has neither.
	Created string `json:"created,omitempty"`
	// Reason says why a tag was kept ("does not match", "newer than 168h0m0s", ...).
	Reason string `json:"reason,omitempty"`
}

// ManifestIndex is what imagebuilder manifest create made (or would make).
type ManifestIndex struct {
	// Changed is false when Ref already served this index.
	Changed bool `json:"changed"`
	DryRun  bool `json:"dry_run,omitempty"`
	// Ref is the index's reference, REGISTRY/REPO:TAG.
	Ref string `json:"ref"`
	// Digest is the index's digest (computed, in a dry run); MediaType its media type.
	Digest    string `json:"digest,omitempty"`
	MediaType string `json:"media_type,omitempty"`
	// Previous is the digest Ref served before ("" when it did not exist).
	Previous string `json:"previous,omitempty"`
	// Manifests are the index's entries, in order.
	Manifests []IndexChild `json:"manifests"`
	Failed    *Failure     `json:"failed,omitempty"`
}

// IndexChild is one entry of an index.
type IndexChild struct {
	// Platform is os/arch[/variant]; unknown/unknown for an attestation manifest.
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
	// From is the source reference it came from.
	From string `json:"from"`
	// Attests is, for an attestation manifest, the digest of the image it describes.
	Attests string `json:"attests,omitempty"`
}
