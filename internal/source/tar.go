package source

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// maxTrailing is how much data may follow the end of an archive (tar pads to 10 KiB records);
// it is read so that the sha256 covers the whole file.
const maxTrailing = 1 << 20

// extract streams a plain or gzip tarball from r into root, an existing empty directory given
// as an absolute path without symlinks. Every write goes through an os.Root, so nothing lands
// outside root whatever the archive holds; on top of that, entries that would reach outside
// (absolute names, "..", links leading out), devices and fifos are refused, and lim caps the
// bytes and entries. Errors name the offending entry.
func extract(ctx context.Context, r io.Reader, root string, lim Limits) error {
	br := bufio.NewReader(ctxReader{ctx, r})
	var in io.Reader = br
	magic, _ := br.Peek(10)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("reading gzip data: %w", err)
		}
		defer gz.Close()
		in = gz
	case len(magic) == 10 && string(magic[:3]) == "BZh" && string(magic[4:]) == "1AY&SY",
		bytes.HasPrefix(magic, []byte("\xfd7zXZ\x00")),
		bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return errors.New("compressed with bzip2, xz or zstd: only plain and gzip tarballs are supported")
	case bytes.HasPrefix(magic, []byte("PK\x03\x04")):
		return errors.New("a zip archive: only plain and gzip tarballs are supported")
	}

	rt, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer rt.Close()
	x := &extractor{root: rt, dir: root, lim: lim}
	tr := tar.NewReader(in)
	last := ""
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if last == "" {
				return fmt.Errorf("reading the archive: %w", err)
			}
			return fmt.Errorf("reading the archive after entry %q: %w", last, err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		last = hdr.Name
	}
	// Read what follows the end marker: the rest of the padding, and gzip's checksum.
	if n, err := io.CopyN(io.Discard, in, maxTrailing+1); n > maxTrailing {
		return fmt.Errorf("more than %d bytes of data after the end of the archive", maxTrailing)
	} else if err != nil && err != io.EOF {
		return fmt.Errorf("reading the end of the archive: %w", err)
	}
	return x.finish()
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type extractor struct {
	root    *os.Root
	dir     string
	lim     Limits
	entries int
	bytes   int64
	dirs    []dirMeta // applied at the end, once nothing more is written into them
}

type dirMeta struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
}

// keptMode is the part of an entry's mode that is applied: permissions only. Setuid, setgid
// and sticky bits are dropped; a build context has no use for them, and a setuid file from a
// downloaded archive has no business on the build host.
const keptMode = fs.ModePerm

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	x.entries++
	if x.entries > x.lim.TarEntries {
		return fmt.Errorf("the archive has more than %d entries", x.lim.TarEntries)
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // pax global header (git archive writes one): no file
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	mode := hdr.FileInfo().Mode() & keptMode
	switch hdr.Typeflag {
	case tar.TypeDir:
		if name != "." {
			if err := x.root.MkdirAll(name, 0o755); err != nil {
				return err
			}
		}
		x.dirs = append(x.dirs, dirMeta{name: name, mode: mode, mtime: hdr.ModTime})
		return nil
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		if hdr.Size > x.lim.TarBytes-x.bytes {
			return fmt.Errorf("the files in the archive exceed the limit of %d bytes", x.lim.TarBytes)
		}
		x.bytes += hdr.Size
		if err := x.prepare(name); err != nil {
			return err
		}
		f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.CopyN(f, r, hdr.Size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if err := x.root.Chmod(name, mode); err != nil {
			return err
		}
		return x.root.Chtimes(name, hdr.ModTime, hdr.ModTime)
	case tar.TypeSymlink:
		if err := checkSymlink(name, hdr.Linkname); err != nil {
			return err
		}
		if err := x.prepare(name); err != nil {
			return err
		}
		return x.root.Symlink(hdr.Linkname, name)
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
		}
		if err := x.prepare(name); err != nil {
			return err
		}
		return x.root.Link(target, name)
	case tar.TypeChar:
		return errors.New("character device entries are not allowed")
	case tar.TypeBlock:
		return errors.New("block device entries are not allowed")
	case tar.TypeFifo:
		return errors.New("fifo entries are not allowed")
	}
	return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
}

// prepare makes the parent directories of name and removes a non-directory already there
// (a later entry replaces an earlier one, as tar does).
func (x *extractor) prepare(name string) error {
	if name == "." {
		return errors.New("not a directory, but names the archive root")
	}
	if err := x.root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	fi, err := x.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.IsDir():
		return errors.New("a directory of that name is already there")
	}
	return x.root.Remove(name)
}

// finish checks every symlink once all are in place, then applies directory modes and times.
func (x *extractor) finish() error {
	err := filepath.WalkDir(x.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		rel, err := filepath.Rel(x.dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		// Lexically from where the link is (a hardlink can move a symlink elsewhere), and
		// then physically (links through other links), also when the target does not exist:
		// a dangling link that leads out would lead out once something is there.
		if err := checkSymlink(name, target); err != nil {
			return fmt.Errorf("entry %q: %w", name, err)
		}
		out, err := leavesRoot(x.dir, name)
		if err != nil {
			return fmt.Errorf("entry %q: %w", name, err)
		}
		if out {
			return fmt.Errorf("entry %q: symlink target %q leads outside the archive root", name, target)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Deepest first, so a read-only directory does not block its children.
	slices.SortStableFunc(x.dirs, func(a, b dirMeta) int {
		return strings.Count(b.name, "/") - strings.Count(a.name, "/")
	})
	for _, d := range x.dirs {
		mode := d.mode
		if os.Geteuid() != 0 {
			mode |= 0o700 // keep the workspace removable by its owner
		}
		if err := x.root.Chmod(d.name, mode); err != nil {
			return fmt.Errorf("entry %q: %w", d.name, err)
		}
		if err := x.root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
			return fmt.Errorf("entry %q: %w", d.name, err)
		}
	}
	return nil
}

// cleanName turns an entry name into a clean relative path, refusing absolute names and
// names that climb out of the archive root.
func cleanName(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("empty name")
	case strings.HasPrefix(name, "/"):
		return "", errors.New("absolute path")
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", errors.New("path leaves the archive root")
	}
	return c, nil
}

// checkSymlink refuses a symlink at name whose target is absolute or climbs out of the root.
func checkSymlink(name, target string) error {
	switch {
	case target == "":
		return errors.New("symlink with an empty target")
	case path.IsAbs(target):
		return fmt.Errorf("symlink target %q is absolute: it leads outside the archive root", target)
	}
	if j := path.Join(path.Dir(name), target); j == ".." || strings.HasPrefix(j, "../") {
		return fmt.Errorf("symlink target %q leads outside the archive root", target)
	}
	return nil
}

// maxLinks bounds the symlinks followed while resolving one path, as the kernel does (40).
const maxLinks = 40

// leavesRoot resolves rel (slash-separated, relative to root) one component at a time,
// following symlinks, and reports whether the resolution ever leaves root. Unlike
// filepath.EvalSymlinks it keeps going, lexically, past components that do not exist, so a
// dangling link that escapes ("l -> here/../x" with "here -> .") is caught.
func leavesRoot(root, rel string) (bool, error) {
	todo := strings.Split(rel, "/")
	var cur []string // resolved components, inside root
	links := 0
	for len(todo) > 0 {
		part := todo[0]
		todo = todo[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return true, nil
			}
			cur = cur[:len(cur)-1]
			continue
		}
		full := filepath.Join(append([]string{root}, append(cur, part)...)...)
		fi, err := os.Lstat(full)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			cur = append(cur, part)
			continue
		case err != nil:
			return false, err
		case fi.Mode()&fs.ModeSymlink == 0:
			cur = append(cur, part)
			continue
		}
		if links++; links > maxLinks {
			return false, errors.New("too many levels of symbolic links")
		}
		target, err := os.Readlink(full)
		if err != nil {
			return false, err
		}
		if path.IsAbs(target) {
			return true, nil
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return false, nil
}
