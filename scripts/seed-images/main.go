// Command seed-images assembles small multi-architecture busybox images from
// static busybox binaries and pushes them as OCI image indexes to the test
// registries. It is used by scripts/testenv.sh; nothing can be pulled from the
// internet on the test machines, so the base images are built locally.
//
// The images are reproducible (fixed timestamps, sorted tar entries), so a
// second run finds the registry already holding the same index digest and
// skips the push.
//
// Usage:
//
//	go run ./scripts/seed-images \
//	    -busybox linux/amd64=/path/amd64/busybox -busybox linux/arm64=/path/arm64/busybox \
//	    [-applets FILE] [-username U -password-file F] \
//	    REF=MARKER [REF=MARKER...]
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// markerPath is the file whose content tells tests which base image a build used.
const markerPath = "etc/imagebuilder-base"

// defaultApplets are installed when no applet list is given; tests rely on them.
var defaultApplets = []string{
	"bin/sh", "bin/ash", "bin/ls", "bin/cat", "bin/echo", "bin/uname", "bin/mkdir", "bin/cp",
	"bin/mv", "bin/rm", "bin/ln", "bin/chmod", "bin/chown", "bin/touch", "bin/sed", "bin/grep",
	"bin/true", "bin/false", "bin/sleep", "bin/pwd", "bin/date", "bin/hostname", "bin/id",
	"usr/bin/test", "usr/bin/[", "usr/bin/env", "usr/bin/head", "usr/bin/tail", "usr/bin/wc",
	"usr/bin/tr", "usr/bin/cut", "usr/bin/find", "usr/bin/xargs", "usr/bin/awk", "usr/bin/sort",
	"usr/bin/whoami", "usr/bin/which", "usr/bin/sha256sum", "bin/tar", "bin/gzip", "usr/bin/wget",
}

// epoch is the fixed timestamp used for every file and the image config.
var epoch = time.Unix(0, 0).UTC()

type platformBinary struct {
	platform v1.Platform
	path     string
}

type busyboxFlag []platformBinary

func (b *busyboxFlag) String() string {
	parts := make([]string, 0, len(*b))
	for _, p := range *b {
		parts = append(parts, p.platform.String()+"="+p.path)
	}
	return strings.Join(parts, ",")
}

func (b *busyboxFlag) Set(value string) error {
	plat, file, ok := strings.Cut(value, "=")
	if !ok || file == "" {
		return fmt.Errorf("want OS/ARCH[/VARIANT]=PATH, got %q", value)
	}
	p, err := v1.ParsePlatform(plat)
	if err != nil {
		return fmt.Errorf("parsing platform %q: %w", plat, err)
	}
	*b = append(*b, platformBinary{platform: *p, path: file})
	return nil
}

type options struct {
	binaries     []platformBinary
	applets      []string
	username     string
	passwordFile string
	targets      []target
}

type target struct {
	ref    name.Reference
	marker string
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("seed-images: ")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	opts, err := parseArgs(os.Args[1:])
	if err != nil {
		log.Fatal(err)
	}
	if err := run(ctx, opts); err != nil {
		log.Fatal(err)
	}
}

func parseArgs(args []string) (*options, error) {
	fs := flag.NewFlagSet("seed-images", flag.ContinueOnError)
	var (
		binaries    busyboxFlag
		appletsFile = fs.String("applets", "", "file listing applet paths (output of `busybox --list-full`)")
		username    = fs.String("username", "", "registry user name (basic auth)")
		passFile    = fs.String("password-file", "", "file holding the registry password")
	)
	fs.Var(&binaries, "busybox", "OS/ARCH=PATH of a static busybox binary (repeatable)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if len(binaries) == 0 {
		return nil, errors.New("at least one -busybox OS/ARCH=PATH is required")
	}
	if (*username == "") != (*passFile == "") {
		return nil, errors.New("-username and -password-file go together")
	}
	opts := &options{
		binaries:     binaries,
		applets:      defaultApplets,
		username:     *username,
		passwordFile: *passFile,
	}
	if *appletsFile != "" {
		applets, err := readApplets(*appletsFile)
		if err != nil {
			return nil, err
		}
		opts.applets = applets
	}
	if fs.NArg() == 0 {
		return nil, errors.New("at least one REF=MARKER argument is required")
	}
	for _, arg := range fs.Args() {
		refStr, marker, ok := strings.Cut(arg, "=")
		if !ok || marker == "" {
			return nil, fmt.Errorf("want REF=MARKER, got %q", arg)
		}
		ref, err := name.ParseReference(refStr, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("parsing reference %q: %w", refStr, err)
		}
		opts.targets = append(opts.targets, target{ref: ref, marker: marker})
	}
	return opts, nil
}

// readApplets reads applet paths, one per line, relative to the root.
func readApplets(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("opening applet list: %w", err)
	}
	defer f.Close()
	var applets []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		applets = append(applets, strings.TrimPrefix(path.Clean("/"+line), "/"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading applet list %q: %w", file, err)
	}
	// Whatever the list says, the applets tests rely on must be present.
	for _, a := range defaultApplets {
		base := path.Base(a)
		if !slices.ContainsFunc(applets, func(s string) bool { return path.Base(s) == base }) {
			applets = append(applets, a)
		}
	}
	return applets, nil
}

func run(ctx context.Context, opts *options) error {
	remoteOpts := []remote.Option{remote.WithContext(ctx)}
	if opts.username != "" {
		pw, err := os.ReadFile(opts.passwordFile)
		if err != nil {
			return fmt.Errorf("reading password file: %w", err)
		}
		remoteOpts = append(remoteOpts, remote.WithAuth(&authn.Basic{
			Username: opts.username,
			Password: strings.TrimRight(string(pw), "\r\n"),
		}))
	}
	binaries := make(map[string][]byte, len(opts.binaries))
	for _, b := range opts.binaries {
		data, err := os.ReadFile(b.path)
		if err != nil {
			return fmt.Errorf("reading busybox for %s: %w", b.platform, err)
		}
		binaries[b.path] = data
	}
	for _, t := range opts.targets {
		idx, err := buildIndex(opts, binaries, t.marker)
		if err != nil {
			return fmt.Errorf("building index for %q: %w", t.ref, err)
		}
		want, err := idx.Digest()
		if err != nil {
			return fmt.Errorf("computing index digest for %q: %w", t.ref, err)
		}
		desc, err := remote.Head(t.ref, remoteOpts...)
		switch {
		case err == nil && desc.Digest == want:
			log.Printf("%s already at %s", t.ref, want)
			continue
		case err != nil && !isNotFound(err):
			return fmt.Errorf("checking %q: %w", t.ref, err)
		}
		if err := remote.WriteIndex(t.ref, idx, remoteOpts...); err != nil {
			return fmt.Errorf("pushing %q: %w", t.ref, err)
		}
		log.Printf("pushed %s@%s", t.ref, want)
	}
	return nil
}

func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

func buildIndex(opts *options, binaries map[string][]byte, marker string) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, b := range opts.binaries {
		img, err := buildImage(b.platform, binaries[b.path], opts.applets, marker)
		if err != nil {
			return nil, fmt.Errorf("building %s image: %w", b.platform, err)
		}
		p := b.platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	return idx, nil
}

func buildImage(p v1.Platform, busybox []byte, applets []string, marker string) (v1.Image, error) {
	layerTar, err := rootfs(busybox, applets, marker)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("creating layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "imagebuilder seed-images: busybox-static rootfs",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("appending layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS = p.OS
	cfg.Architecture = p.Architecture
	cfg.Variant = p.Variant
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cfg.Config.Cmd = []string{"sh"}
	cfg.Config.Labels = map[string]string{"org.imagebuilder.test.base": marker}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("setting config: %w", err)
	}
	return img, nil
}

// rootfs returns an uncompressed tar of a minimal busybox root file system.
func rootfs(busybox []byte, applets []string, marker string) ([]byte, error) {
	type entry struct {
		hdr  tar.Header
		data []byte
	}
	entries := map[string]entry{}
	addDir := func(p string, mode int64) {
		entries[p] = entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode}}
	}
	var addParents func(p string)
	addParents = func(p string) {
		dir := path.Dir(p)
		if dir == "." || dir == "/" {
			return
		}
		if _, ok := entries[dir]; !ok {
			addDir(dir, 0o755)
			addParents(dir)
		}
	}
	addFile := func(p string, mode int64, data []byte) {
		addParents(p)
		entries[p] = entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: int64(len(data))}, data: data}
	}
	addLink := func(p, target string) {
		addParents(p)
		entries[p] = entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: target, Mode: 0o777}}
	}

	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "etc", "root", "home", "var", "proc", "sys", "dev"} {
		addParents(d + "/x")
		addDir(d, 0o755)
	}
	addDir("root", 0o700)
	addDir("tmp", 0o1777)
	addDir("var/tmp", 0o1777)
	addFile("bin/busybox", 0o755, busybox)
	for _, a := range applets {
		if a == "bin/busybox" || a == "" {
			continue
		}
		addLink(a, "/bin/busybox")
	}
	addFile("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	addFile("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	addFile("etc/hosts", 0o644, []byte("127.0.0.1\tlocalhost\n"))
	addFile(markerPath, 0o644, []byte(marker+"\n"))

	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	slices.Sort(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := entries[n]
		hdr := e.hdr
		hdr.ModTime = epoch
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(&hdr); err != nil {
			return nil, fmt.Errorf("writing tar header for %q: %w", n, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("writing %q: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing tar: %w", err)
	}
	return buf.Bytes(), nil
}
