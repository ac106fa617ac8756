package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func key(t *testing.T) []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	s, err := New(key(t))
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"password": "hunter2"}`)
	blob, err := s.Seal(plain, []byte("inv-1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, []byte("hunter2")) {
		t.Fatal("the blob holds the plaintext")
	}
	again, _ := s.Seal(plain, []byte("inv-1"))
	if bytes.Equal(blob, again) {
		t.Error("two seals of one plaintext are equal: the nonce is not random")
	}
	got, err := s.Open(blob, []byte("inv-1"))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %q %v", got, err)
	}
	other, _ := New(key(t))
	tampered := bytes.Clone(blob)
	tampered[len(tampered)-1] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"other aad": func() ([]byte, error) { return s.Open(blob, []byte("inv-2")) },
		"other key": func() ([]byte, error) { return other.Open(blob, []byte("inv-1")) },
		"tampered":  func() ([]byte, error) { return s.Open(tampered, []byte("inv-1")) },
		"short":     func() ([]byte, error) { return s.Open(blob[:10], []byte("inv-1")) },
		"version":   func() ([]byte, error) { return s.Open(append([]byte{9}, blob[1:]...), []byte("inv-1")) },
	} {
		if out, err := open(); err == nil || out != nil {
			t.Errorf("%s: opened (%q)", name, out)
		}
	}
	if _, err := New(make([]byte, 16)); err == nil {
		t.Error("a 16-byte key was taken")
	}
}

func TestParseKey(t *testing.T) {
	k := key(t)
	for _, text := range []string{
		base64.StdEncoding.EncodeToString(k), base64.RawURLEncoding.EncodeToString(k),
		hex.EncodeToString(k), " " + hex.EncodeToString(k) + "\n",
	} {
		got, err := ParseKey(text)
		if err != nil || !bytes.Equal(got, k) {
			t.Errorf("ParseKey(%q): %x %v", text, got, err)
		}
	}
	for _, text := range []string{"", "short", base64.StdEncoding.EncodeToString(k[:16]), hex.EncodeToString(k)[:63] + "g"} {
		if _, err := ParseKey(text); err == nil {
			t.Errorf("ParseKey(%q) accepted", text)
		} else if text != "" && strings.Contains(err.Error(), text) {
			t.Errorf("the error quotes the key: %v", err)
		}
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	k := key(t)
	file := filepath.Join(dir, "key")
	os.WriteFile(file, []byte(hex.EncodeToString(k)+"\n"), 0o600)
	env := key(t)
	for name, c := range map[string]struct {
		src  Source
		want []byte
	}{
		"key wins":     {Source{Key: k, Env: base64.StdEncoding.EncodeToString(env), File: "/nonexistent"}, k},
		"env, file":    {Source{Env: base64.StdEncoding.EncodeToString(env), File: file}, env},
		"file, create": {Source{File: file, CreateFile: filepath.Join(dir, "other")}, k},
	} {
		got, err := Resolve(c.src)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: %x %v", name, got, err)
		}
	}
	if _, err := Resolve(Source{}); !errors.Is(err, ErrNoKey) {
		t.Errorf("no key: %v", err)
	}
	if _, err := Resolve(Source{File: filepath.Join(dir, "missing")}); err == nil || errors.Is(err, ErrNoKey) {
		t.Errorf("a missing key file: %v", err)
	}
	if _, err := Resolve(Source{Env: "not a key"}); err == nil || !strings.Contains(err.Error(), EnvKey) {
		t.Errorf("a bad env key: %v", err)
	}
	created := filepath.Join(dir, "state", "serve.db.key")
	first, err := Resolve(Source{CreateFile: created})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(created); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("created key file: %v %v", fi.Mode(), err)
	}
	second, err := Resolve(Source{CreateFile: created})
	if err != nil || !bytes.Equal(first, second) {
		t.Errorf("the created key is not read back: %v", err)
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	f.Add("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		k, err := ParseKey(text)
		if err == nil && len(k) != KeySize {
			t.Fatalf("a %d-byte key", len(k))
		}
		if err != nil && len(strings.TrimSpace(text)) >= 8 && strings.Contains(err.Error(), strings.TrimSpace(text)) {
			t.Fatalf("the error quotes the input: %v", err)
		}
	})
}
