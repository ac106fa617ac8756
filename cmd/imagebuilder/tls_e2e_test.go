package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// TestBuildTLSEndpoint: builder.endpoint tcp:// with builder.tls reaches a BuildKit that only
// accepts TLS clients with a certificate from its CA. The endpoint is a TLS terminator on
// 127.0.0.1 in front of the test environment's buildkitd; without the client certificate the
// build fails naming the endpoint.
func TestBuildTLSEndpoint(t *testing.T) {
	env := testenv.Require(t, "IMAGEBUILDER_TEST_BUILDKIT", "IMAGEBUILDER_TEST_REGISTRY", "IMAGEBUILDER_TEST_BASE")
	socket := strings.TrimPrefix(env["IMAGEBUILDER_TEST_BUILDKIT"], "unix://")
	dir := t.TempDir()
	ca, caKey := newCert(t, dir, "ca", nil, nil)
	newCert(t, dir, "server", ca, caKey)
	newCert(t, dir, "client", ca, caKey)

	serverCert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		NextProtos:   []string{"h2"},
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				u, err := net.Dial("unix", socket)
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c)
				io.Copy(c, u)
			}()
		}
	}()
	endpoint := "tcp://" + ln.Addr().String()

	repo := testenv.GitRepoURL(t, map[string]string{"Dockerfile": "FROM " + env["IMAGEBUILDER_TEST_BASE"] + "\nRUN echo tls > /tls\n"})
	p := request(repo, env["IMAGEBUILDER_TEST_REGISTRY"], map[string]any{"image": "e2e/tls", "tag": testenv.UniqueTag("tls")})
	p["builder"] = map[string]any{"endpoint": endpoint, "tls": map[string]any{
		"ca_cert": filepath.Join(dir, "ca.pem"), "cert": filepath.Join(dir, "client.pem"),
		"key": filepath.Join(dir, "client-key.pem"), "server_name": "localhost",
	}}
	r := ibBinary(t, t.TempDir(), p, "build", "--progress", "plain")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := fileIn(t, r.res.Images[0].Ref, "", "/tls"); got != "tls\n" {
		t.Errorf("/tls = %q", got)
	}

	// Without the client certificate the TLS endpoint refuses the connection.
	p["builder"] = map[string]any{"endpoint": endpoint, "tls": map[string]any{
		"ca_cert": filepath.Join(dir, "ca.pem"), "server_name": "localhost",
	}}
	r = ibBinary(t, t.TempDir(), p, "build", "--progress", "plain")
	if r.code != 1 || r.res.Failed == nil || !strings.Contains(r.res.Failed.Error, ln.Addr().String()) {
		t.Fatalf("without a client certificate: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// newCert writes NAME.pem and NAME-key.pem in dir: a CA when parent is nil, else a
// certificate for localhost (server and client use) signed by parent.
func newCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		tmpl.DNSNames = []string{"localhost"}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(file, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(name+".pem", "CERTIFICATE", der)
	write(name+"-key.pem", "EC PRIVATE KEY", keyDER)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
