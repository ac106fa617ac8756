package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/imagebuilder/imagebuilder/internal/service"
)

func TestAPIKey(t *testing.T) {
	storeDown := errors.New("database is locked")
	a, err := New(context.Background(), Config{Keys: func(_ context.Context, key string) (*service.Principal, error) {
		switch key {
		case "good":
			return &service.Principal{Name: "ci", Admin: false}, nil
		case "broken":
			return nil, storeDown
		}
		return nil, service.ErrUnauthorized
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := a.Authenticate(ctx, "good", "")
	if err != nil || p.Name != "ci" || p.Admin {
		t.Fatalf("good key: %+v, %v", p, err)
	}
	if _, err := a.Authenticate(ctx, "revoked-key-value", ""); !errors.Is(err, service.ErrUnauthorized) || strings.Contains(err.Error(), "revoked-key-value") {
		t.Fatalf("unknown key: %v (want ErrUnauthorized, not quoting the key)", err)
	}
	if _, err := a.Authenticate(ctx, "broken", ""); errors.Is(err, service.ErrUnauthorized) || !errors.Is(err, storeDown) {
		t.Fatalf("key store failure: %v (want the store's error, not a 401)", err)
	}
	if _, err := a.Authenticate(ctx, "", ""); !errors.Is(err, service.ErrUnauthorized) {
		t.Fatalf("no credentials: %v", err)
	}
	if _, err := a.Authenticate(ctx, "good", "Bearer abc"); !errors.Is(err, service.ErrUnauthorized) {
		t.Fatalf("a key and a token: %v (want a refusal: which one counts would be a guess)", err)
	}
	if _, err := a.Authenticate(ctx, "", "Bearer abc"); !errors.Is(err, service.ErrUnauthorized) {
		t.Fatalf("bearer without a configured checker: %v", err)
	}
	if _, err := a.Authenticate(ctx, "", "Basic dXNlcjpwYXNz"); !errors.Is(err, service.ErrUnauthorized) {
		t.Fatalf("basic auth: %v", err)
	}
}

func TestNoAuth(t *testing.T) {
	a, err := New(context.Background(), Config{NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Authenticate(context.Background(), "", "")
	if err != nil || p.Name != Anonymous || !p.Admin {
		t.Fatalf("no-auth: %+v, %v", p, err)
	}
}

// introspectionServer is an RFC 7662 endpoint in the shape Keycloak answers: it knows tokens,
// checks the client's credentials, and records what it was sent.
type introspectionServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string // "client-id token"
}

func newIntrospectionServer(t *testing.T, tokens map[string]string) *introspectionServer {
	s := &introspectionServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != "imagebuilder" || secret != "client-secret" || r.Method != http.MethodPost {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.requests = append(s.requests, id+" "+r.PostForm.Get("token"))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		answer, ok := tokens[r.PostForm.Get("token")]
		if !ok {
			answer = `{"active":false}`
		}
		_, _ = w.Write([]byte(answer))
	}))
	t.Cleanup(s.Close)
	return s
}

func TestIntrospection(t *testing.T) {
	idp := newIntrospectionServer(t, map[string]string{
		"tok-alice": `{"active":true,"sub":"5f1c","username":"alice","scope":"openid email","realm_access":{"roles":["offline_access"]}}`,
		"tok-admin": `{"active":true,"sub":"9a0b","username":"root","scope":"openid","realm_access":{"roles":["imagebuilder-admin"]}}`,
		"tok-sub":   `{"active":true,"sub":"svc-7","scope":"imagebuilder-admin"}`,
		"tok-nosub": `{"active":true}`,
		"tok-old":   `{"active":false,"sub":"5f1c","username":"alice"}`, // expired or revoked
	})
	ctx := context.Background()
	a, err := New(ctx, Config{IntrospectionURL: idp.URL + "/introspect", ClientID: "imagebuilder", ClientSecret: "client-secret", AdminRole: "imagebuilder-admin"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		token, name string
		admin       bool
	}{
		{"tok-alice", "alice", false},
		{"tok-admin", "root", true}, // a Keycloak realm role
		{"tok-sub", "svc-7", true},  // a scope; no username: the subject
	} {
		p, err := a.Authenticate(ctx, "", "Bearer "+tc.token)
		if err != nil || p.Name != tc.name || p.Admin != tc.admin {
			t.Errorf("%s: %+v, %v; want %s admin=%v", tc.token, p, err, tc.name, tc.admin)
		}
	}
	for _, token := range []string{"tok-unknown", "tok-nosub", "tok-old"} {
		if _, err := a.Authenticate(ctx, "", "Bearer "+token); !errors.Is(err, service.ErrUnauthorized) || strings.Contains(err.Error(), token) {
			t.Errorf("%s: %v (want ErrUnauthorized, not quoting the token)", token, err)
		}
	}
	idp.mu.Lock()
	if len(idp.requests) != 6 || idp.requests[0] != "imagebuilder tok-alice" {
		t.Errorf("the endpoint got %q", idp.requests)
	}
	idp.mu.Unlock()

	// Wrong client credentials: the identity provider refuses the service, which is not the
	// caller's fault (no 401), and the error quotes neither the token nor the secret.
	bad, err := New(ctx, Config{IntrospectionURL: idp.URL, ClientID: "imagebuilder", ClientSecret: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Authenticate(ctx, "", "Bearer tok-alice")
	if err == nil || errors.Is(err, service.ErrUnauthorized) || strings.Contains(err.Error(), "tok-alice") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("refused client: %v", err)
	}
	if _, err := New(ctx, Config{IntrospectionURL: "ftp://x", ClientID: "a"}); err == nil {
		t.Fatal("an ftp introspection URL was accepted")
	}
}

// oidcIssuer serves an OpenID Connect discovery document and a JWKS for one RSA key, as Keycloak
// does for a realm, and signs tokens with that key.
type oidcIssuer struct {
	*httptest.Server
	signer jose.Signer
}

func newOIDCIssuer(t *testing.T) *oidcIssuer {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k1", Algorithm: string(jose.RS256), Use: "sig"}
	iss := &oidcIssuer{}
	mux := http.NewServeMux()
	iss.Server = httptest.NewServer(mux)
	t.Cleanup(iss.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss.URL, "jwks_uri": iss.URL + "/certs",
			"authorization_endpoint": iss.URL + "/auth", "token_endpoint": iss.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /certs", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	})
	iss.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func (iss *oidcIssuer) token(t *testing.T, signer jose.Signer, claims map[string]any) string {
	t.Helper()
	if signer == nil {
		signer = iss.signer
	}
	base := map[string]any{"iss": iss.URL, "aud": "imagebuilder", "sub": "u-1", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	for k, v := range claims {
		base[k] = v
	}
	raw, err := jwt.Signed(signer).Claims(base).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestOIDC(t *testing.T) {
	iss := newOIDCIssuer(t)
	ctx := context.Background()
	a, err := New(ctx, Config{OIDCIssuer: iss.URL, OIDCAudience: "imagebuilder", AdminRole: "imagebuilder-admin"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Authenticate(ctx, "", "Bearer "+iss.token(t, nil, map[string]any{"preferred_username": "bob", "realm_access": map[string]any{"roles": []string{"imagebuilder-admin"}}}))
	if err != nil || p.Name != "bob" || !p.Admin {
		t.Fatalf("valid admin token: %+v, %v", p, err)
	}
	p, err = a.Authenticate(ctx, "", "bearer "+iss.token(t, nil, map[string]any{"scope": "openid email"}))
	if err != nil || p.Name != "u-1" || p.Admin {
		t.Fatalf("valid token without a username: %+v, %v", p, err)
	}

	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forger, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: otherKey, KeyID: "k1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, token := range map[string]string{
		"wrong audience": iss.token(t, nil, map[string]any{"aud": "another-client"}),
		"expired":        iss.token(t, nil, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}),
		"wrong issuer":   iss.token(t, nil, map[string]any{"iss": "https://evil.example"}),
		"forged":         iss.token(t, forger, nil),
		"not a JWT":      "opaque-token",
	} {
		_, err := a.Authenticate(ctx, "", "Bearer "+token)
		if !errors.Is(err, service.ErrUnauthorized) || strings.Contains(err.Error(), token) {
			t.Errorf("%s: %v (want ErrUnauthorized, not quoting the token)", name, err)
		}
	}

	if _, err := New(ctx, Config{OIDCIssuer: iss.URL}); err == nil {
		t.Error("an issuer without an audience was accepted")
	}
	if _, err := New(ctx, Config{OIDCIssuer: iss.URL + "/nowhere", OIDCAudience: "x"}); err == nil {
		t.Error("an issuer without a discovery document was accepted")
	}
}

func TestLimiter(t *testing.T) {
	if ok, _ := (*Limiter)(nil).Allow("x"); !ok || NewLimiter(0, 5) != nil {
		t.Fatal("no limit should allow everything")
	}
	now := time.Unix(1000, 0)
	l := NewLimiter(2, 3) // 2 a second, bursts of 3
	l.now = func() time.Time { return now }
	for i := range 3 {
		if ok, _ := l.Allow("alice"); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, retry := l.Allow("alice")
	if ok || retry <= 0 || retry > 500*time.Millisecond {
		t.Fatalf("4th request: allowed=%v retry after %v; want refused, at most 0.5s", ok, retry)
	}
	if ok, _ := l.Allow("bob"); !ok {
		t.Fatal("another principal shares alice's budget")
	}
	// A refused request does not use up budget: after the Retry-After, one more is allowed.
	now = now.Add(retry)
	if ok, _ := l.Allow("alice"); !ok {
		t.Fatal("refused after Retry-After")
	}
}
