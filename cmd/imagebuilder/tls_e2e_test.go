package main

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

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

// newCert is testenv.NewCert.
func newCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	return testenv.NewCert(t, dir, name, parent, parentKey)
}
