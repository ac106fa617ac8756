package testenv

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// SocketProxy forwards a unix socket to another one and counts the connections it forwarded.
// Tests use it as a second address of a shared daemon (to prove a build went through a given
// address), or as an endpoint that dies mid-build (Kill) without touching the shared daemons.
type SocketProxy struct {
	// Addr is the proxy's address, unix:///tmp/.../s.sock.
	Addr string

	ln    net.Listener
	conns atomic.Int64
	mu    sync.Mutex
	open  []net.Conn
}

// StartSocketProxy forwards a new unix socket to target (a socket path); it stops when the test
// ends.
func StartSocketProxy(t testing.TB, target string) *SocketProxy {
	t.Helper()
	// Socket paths are limited to about 100 bytes; t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "ibproxy")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := &SocketProxy{Addr: "unix://" + sock, ln: ln}
	t.Cleanup(p.Kill)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("unix", target)
			if err != nil {
				c.Close()
				continue
			}
			p.conns.Add(1)
			p.mu.Lock()
			p.open = append(p.open, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

// Conns is the number of connections forwarded so far.
func (p *SocketProxy) Conns() int64 { return p.conns.Load() }

// Kill stops accepting and drops every forwarded connection.
func (p *SocketProxy) Kill() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.open {
		c.Close()
	}
	p.open = nil
}
