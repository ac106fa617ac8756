// Package publish moves a set of tags together: every tag of a request moves, or none does.
// The build pipeline publishes what it built with it, and promote publishes what was staged.
package publish

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Registry is what publishing needs of a registry client (*registry.Client).
type Registry interface {
	// Tag points dst (REPOSITORY:TAG) at the manifest src (REPOSITORY@DIGEST) names.
	Tag(ctx context.Context, src string, dst ...string) error
	// Delete removes a tag without deleting the manifest other tags name.
	Delete(ctx context.Context, ref string) error
}

// Move points one tag at a manifest.
type Move struct {
	// Repository and Tag name the tag to move (REGISTRY/REPO, TAG).
	Repository, Tag string
	// Source is the digest reference of the manifest to point it at (REPOSITORY@DIGEST); it
	// may be in another repository or registry, whose blobs are then mounted or copied.
	Source string
	// Previous is the digest the tag points at now ("" when it does not exist), where a
	// rollback puts it back.
	Previous string
}

// Ref is the moved tag's reference, REPOSITORY:TAG.
func (m Move) Ref() string { return m.Repository + ":" + m.Tag }

// Error is a failed Apply: which move failed, why, and whether putting back the moves already
// made failed too.
type Error struct {
	// Index is the failed move's position in the list.
	Index int
	Move  Move
	Err   error
	// Rollback is the error of putting back the earlier moves (nil when they were all restored).
	Rollback error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("tagging %s: %v", e.Move.Ref(), e.Err)
	if e.Rollback != nil {
		msg += fmt.Sprintf("; rolling back: %v", e.Rollback)
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// RollbackTimeout bounds putting tags back after a failure (which runs even when the run's
// context was cancelled).
const RollbackTimeout = time.Minute

// Apply makes the moves in order. If one fails, the moves already made are undone — each tag
// pointed back at its previous digest, or deleted when it did not exist before — and the error
// is an *Error. moved, when not nil, is called after each successful move with its index.
func Apply(ctx context.Context, reg Registry, moves []Move, moved func(i int)) error {
	for i, m := range moves {
		if err := reg.Tag(ctx, m.Source, m.Ref()); err != nil {
			return &Error{Index: i, Move: m, Err: err, Rollback: Rollback(reg, moves[:i])}
		}
		if moved != nil {
			moved(i)
		}
	}
	return nil
}

// Rollback puts moved tags back where they were: at their previous digests, and deletes the
// tags that did not exist before (where the registry allows deletes; the registry client's
// Delete keeps the manifest other tags name). It uses a fresh context bounded by
// RollbackTimeout, so that a cancelled run still restores its tags.
func Rollback(reg Registry, done []Move) error {
	ctx, cancel := context.WithTimeout(context.Background(), RollbackTimeout)
	defer cancel()
	var errs []error
	for _, m := range done {
		var err error
		if m.Previous == "" {
			err = reg.Delete(ctx, m.Ref())
		} else {
			err = reg.Tag(ctx, m.Repository+"@"+m.Previous, m.Ref())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("restoring %s: %w", m.Ref(), err))
		}
	}
	return errors.Join(errs...)
}
