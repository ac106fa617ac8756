package registry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// hubLike answers deletes as Docker Hub does: no tag deletes (405), and a manifest a tag still
// names cannot be deleted (403); an unknown digest is 404.
func hubLike(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := strings.LastIndex(r.URL.Path, "/manifests/")
		if r.Method != http.MethodDelete || i < 0 {
			h.ServeHTTP(w, r)
			return
		}
		repo, ref := r.URL.Path[len("/v2/"):i], r.URL.Path[i+len("/manifests/"):]
		w.Header().Set("Content-Type", "application/json")
		if !strings.HasPrefix(ref, "sha256:") {
			w.WriteHeader(http.StatusMethodNotAllowed)
			io.WriteString(w, `{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}`)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/"+repo+"/tags/list", nil))
		for _, tag := range strings.Split(rec.Body.String(), `"`) {
			head := httptest.NewRecorder()
			h.ServeHTTP(head, httptest.NewRequest(http.MethodHead, "/v2/"+repo+"/manifests/"+tag, nil))
			if tag != "" && head.Header().Get("Docker-Content-Digest") == ref {
				w.WriteHeader(http.StatusForbidden)
				io.WriteString(w, `{"errors":[{"code":"DENIED","message":"manifest is referenced by a tag"}]}`)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// TestDeleteTagRefusedPlaceholder: where the registry refuses to delete the placeholder a tag
// now names, the tag is put back where it was and the error says so.
func TestDeleteTagRefusedPlaceholder(t *testing.T) {
	ctx := context.Background()
	host := serve(t, hubLike(memRegistry()))
	ref := host + "/hub/app:stage"
	want := push(t, ref, image(t, "linux/amd64", false))
	c := newClient(t, noKeychain)
	err := c.Delete(ctx, ref)
	if err == nil || !strings.Contains(err.Error(), "put back on "+want) {
		t.Fatalf("Delete(%s) = %v, want an error saying the tag was put back", ref, err)
	}
	if d, err := c.Resolve(ctx, ref); err != nil || d.Digest != want {
		t.Errorf("after the refused delete %s = %+v, %v; want %s", ref, d, err, want)
	}
}
