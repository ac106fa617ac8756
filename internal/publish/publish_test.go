package publish

import (
	"context"
	"errors"
	"strings"
	"testing"
)

type fakeReg struct {
	tags    map[string]string // ref -> digest reference
	failTag string
	failDel bool
}

func (f *fakeReg) Tag(_ context.Context, src string, dst ...string) error {
	if dst[0] == f.failTag {
		return errors.New("injected")
	}
	f.tags[dst[0]] = src
	return nil
}

func (f *fakeReg) Delete(_ context.Context, ref string) error {
	if f.failDel {
		return errors.New("deletes disabled")
	}
	delete(f.tags, ref)
	return nil
}

// TestApply: moves in order; a failure puts back the tags moved before it (an existing one at
// its previous digest, a new one deleted), leaves the later ones alone, and names the failed move;
// a rollback that fails too says so.
func TestApply(t *testing.T) {
	moves := []Move{
		{Repository: "r/a", Tag: "1", Source: "r/a@sha256:new", Previous: "sha256:old"},
		{Repository: "r/a", Tag: "2", Source: "r/a@sha256:new"},
		{Repository: "r/b", Tag: "1", Source: "r/x@sha256:new", Previous: "sha256:b"},
	}
	f := &fakeReg{tags: map[string]string{"r/a:1": "r/a@sha256:old", "r/b:1": "r/b@sha256:b"}, failTag: "r/b:1"}
	var moved []int
	err := Apply(context.Background(), f, moves, func(i int) { moved = append(moved, i) })
	var pe *Error
	if !errors.As(err, &pe) || pe.Index != 2 || pe.Rollback != nil || !strings.Contains(err.Error(), "tagging r/b:1: injected") {
		t.Fatalf("Apply = %v", err)
	}
	if len(moved) != 2 || f.tags["r/a:1"] != "r/a@sha256:old" || f.tags["r/b:1"] != "r/b@sha256:b" || len(f.tags) != 2 {
		t.Errorf("after the rollback: moved %v, tags %v", moved, f.tags)
	}

	f = &fakeReg{tags: map[string]string{}, failTag: "r/b:1", failDel: true}
	err = Apply(context.Background(), f, moves, nil)
	if !errors.As(err, &pe) || pe.Rollback == nil || !strings.Contains(err.Error(), "rolling back: restoring r/a:2: deletes disabled") {
		t.Errorf("Apply with a failing rollback = %v", err)
	}
	if err := Apply(context.Background(), f, moves[:2], nil); err != nil || f.tags["r/a:2"] != "r/a@sha256:new" {
		t.Errorf("Apply = %v, tags %v", err, f.tags)
	}
}
