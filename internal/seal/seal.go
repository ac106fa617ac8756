// Package seal encrypts the secrets a queued build needs (the submitted document, passwords
// included) with AES-256-GCM, so that the database of `imagebuilder serve` never holds them in
// clear. A sealed blob is bound to what it belongs to (an invocation id, as additional data):
// a blob copied to another row does not open.
//
// The key is 32 bytes, given as base64 or hex in IMAGEBUILDER_SECRET_KEY or in a key file. With
// a local database and no key, [Resolve] creates a key file (0600) beside the database; with a
// database shared over the network and no key it refuses, since every replica needs the same
// key and a key made up by one of them would be useless to the others.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the length of a key: AES-256.
const KeySize = 32

// EnvKey is the environment variable holding the key (base64 or hex).
const EnvKey = "IMAGEBUILDER_SECRET_KEY"

// version is the first byte of every blob: the format, so that another can follow.
const version byte = 1

// ErrNoKey is returned by Resolve when no key is given and none may be created.
var ErrNoKey = errors.New("no secret key: set " + EnvKey + " or give a key file (--secret-key-file); every replica needs the same key")

// Sealer seals and opens blobs with one key. It is safe for concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// New returns a Sealer for a 32-byte key.
func New(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret key: want %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext bound to aad (which must be given again to Open).
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("sealing: %w", err)
	}
	out := append([]byte{version}, nonce...)
	return s.aead.Seal(out, nonce, plaintext, aad), nil
}

// Open decrypts a blob made by Seal with the same key and aad. A blob sealed with another key,
// for other aad, or altered, is an error.
func (s *Sealer) Open(blob, aad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(blob) < 1+n+s.aead.Overhead() || blob[0] != version {
		return nil, errors.New("opening sealed data: not a sealed blob of this version")
	}
	out, err := s.aead.Open(nil, blob[1:1+n], blob[1+n:], aad)
	if err != nil {
		return nil, errors.New("opening sealed data: wrong key, or the data was altered")
	}
	return out, nil
}

// ParseKey reads a key written as base64 (standard or URL alphabet, padded or not) or hex.
// Surrounding white space is ignored. The key itself is never quoted in an error.
func ParseKey(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	if len(text) == 2*KeySize {
		if k, err := hex.DecodeString(text); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(text); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("secret key: want %d bytes, got %d", KeySize, len(k))
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("secret key: want %d bytes as base64 or hex", KeySize)
}

// Source says where a key may come from, in order: Key, the environment value Env (the
// content of IMAGEBUILDER_SECRET_KEY), File, and last CreateFile, a file that is read when it
// exists and otherwise created with a new random key ("" when no key may be made up).
type Source struct {
	Key        []byte
	Env        string
	File       string
	CreateFile string
}

// Resolve finds the key as src says. It returns ErrNoKey when there is none and none may be
// created.
func Resolve(src Source) ([]byte, error) {
	switch {
	case src.Key != nil:
		if len(src.Key) != KeySize {
			return nil, fmt.Errorf("secret key: want %d bytes, got %d", KeySize, len(src.Key))
		}
		return src.Key, nil
	case strings.TrimSpace(src.Env) != "":
		k, err := ParseKey(src.Env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvKey, err)
		}
		return k, nil
	case src.File != "":
		return readKeyFile(src.File)
	case src.CreateFile != "":
		k, err := readKeyFile(src.CreateFile)
		if !errors.Is(err, os.ErrNotExist) {
			return k, err
		}
		return createKeyFile(src.CreateFile)
	}
	return nil, ErrNoKey
}

func readKeyFile(name string) ([]byte, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading the secret key file: %w", err)
	}
	k, err := ParseKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("secret key file %s: %w", name, err)
	}
	return k, nil
}

// createKeyFile writes a new random key to name (0600, never over an existing file).
func createKeyFile(name string) ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("creating a secret key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return nil, fmt.Errorf("creating the secret key file: %w", err)
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return readKeyFile(name) // another process made it first
	}
	if err != nil {
		return nil, fmt.Errorf("creating the secret key file: %w", err)
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return nil, fmt.Errorf("writing the secret key file: %w", err)
	}
	return k, nil
}
