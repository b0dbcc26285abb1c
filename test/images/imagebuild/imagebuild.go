// Package imagebuild builds Tower's test images into OCI archives that
// containerd imports without a registry (`tower images import`, or an
// images directory read at start). No Docker is needed: the images are a
// single layer holding a static binary, assembled with go-containerregistry.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image names of the test images, as pods refer to them.
const (
	EchoImage      = "tower.dev/test/echo:v1"
	CrashloopImage = "tower.dev/test/crashloop:v1"
	BusyboxImage   = "tower.dev/test/busybox:v1"
)

// busyboxPath is where Debian's busybox-static installs its binary.
const busyboxPath = "/bin/busybox"

// imageNameAnnotation is the index annotation containerd's importer reads
// the image name from.
const imageNameAnnotation = "io.containerd.image.name"

// Archive is one built image.
type Archive struct {
	Image string
	Path  string
}

// ArchiveFileName is the file an image's archive is written to in the
// output directory: tower.dev/test/echo:v1 becomes echo-v1.tar.
func ArchiveFileName(image string) string {
	name := image[strings.LastIndex(image, "/")+1:]
	return strings.ReplaceAll(name, ":", "-") + ".tar"
}

// Build writes the echo and crashloop images (compiled from this module's
// test/images/<name> packages, so it must run inside the module) and, when
// Debian's busybox-static is installed, the busybox image into outDir.
func Build(ctx context.Context, outDir string) ([]Archive, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", outDir, err)
	}
	work, err := os.MkdirTemp("", "tower-images-")
	if err != nil {
		return nil, fmt.Errorf("creating work dir: %w", err)
	}
	defer os.RemoveAll(work)

	var archives []Archive
	for _, program := range []struct{ image, pkg string }{
		{EchoImage, "tower.dev/tower/test/images/echo"},
		{CrashloopImage, "tower.dev/tower/test/images/crashloop"},
	} {
		binary := filepath.Join(work, filepath.Base(program.pkg))
		if err := goBuildStatic(ctx, program.pkg, binary); err != nil {
			return nil, err
		}
		entry := "/" + filepath.Base(binary)
		files := []layerFile{{name: entry, source: binary, mode: 0o755}}
		archive, err := writeImage(outDir, work, program.image, files, v1.Config{Entrypoint: []string{entry}})
		if err != nil {
			return nil, err
		}
		archives = append(archives, archive)
	}

	if _, err := os.Stat(busyboxPath); err == nil {
		files, err := busyboxFiles(ctx)
		if err != nil {
			return nil, err
		}
		archive, err := writeImage(outDir, work, BusyboxImage, files, v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}})
		if err != nil {
			return nil, err
		}
		archives = append(archives, archive)
	}
	return archives, nil
}

// layerFile is one entry of an image layer: a regular file copied from
// source, or a symlink to link.
type layerFile struct {
	name   string
	source string
	link   string
	mode   int64
}

func goBuildStatic(ctx context.Context, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, output)
	}
	return nil
}

// busyboxFiles is the busybox binary plus a link in /bin for each applet,
// so `sh`, `ls` and `nc` resolve on PATH.
func busyboxFiles(ctx context.Context) ([]layerFile, error) {
	out, err := exec.CommandContext(ctx, busyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("listing busybox applets: %w", err)
	}
	files := []layerFile{{name: "/bin/busybox", source: busyboxPath, mode: 0o755}}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		files = append(files, layerFile{name: "/bin/" + applet, link: "busybox"})
	}
	return files, nil
}

// writeImage assembles a one-layer image and writes it as an OCI layout
// tarred into outDir.
func writeImage(outDir, work, image string, files []layerFile, config v1.Config) (Archive, error) {
	layerTar, err := tarFiles(files)
	if err != nil {
		return Archive{}, fmt.Errorf("image %s: %w", image, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return Archive{}, fmt.Errorf("image %s layer: %w", image, err)
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return Archive{}, fmt.Errorf("image %s: %w", image, err)
	}
	configFile, err := img.ConfigFile()
	if err != nil {
		return Archive{}, fmt.Errorf("image %s config: %w", image, err)
	}
	configFile = configFile.DeepCopy()
	configFile.OS = "linux"
	configFile.Architecture = runtime.GOARCH
	configFile.Config = config
	if img, err = mutate.ConfigFile(img, configFile); err != nil {
		return Archive{}, fmt.Errorf("image %s config: %w", image, err)
	}

	layoutDir := filepath.Join(work, "layout-"+ArchiveFileName(image))
	path, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		return Archive{}, fmt.Errorf("image %s layout: %w", image, err)
	}
	err = path.AppendImage(img,
		layout.WithAnnotations(map[string]string{imageNameAnnotation: image}),
		layout.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
	if err != nil {
		return Archive{}, fmt.Errorf("image %s layout: %w", image, err)
	}
	archivePath := filepath.Join(outDir, ArchiveFileName(image))
	if err := tarDirectory(layoutDir, archivePath); err != nil {
		return Archive{}, fmt.Errorf("image %s archive: %w", image, err)
	}
	return Archive{Image: image, Path: archivePath}, nil
}

// fixedTime keeps layer digests stable between builds.
var fixedTime = time.Unix(0, 0)

func tarFiles(files []layerFile) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		for dir := filepath.Dir(f.name); dir != "/" && !dirs[dir]; dir = filepath.Dir(dir) {
			dirs[dir] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(dir, "/") + "/", Mode: 0o755, ModTime: fixedTime}); err != nil {
				return nil, err
			}
		}
		name := strings.TrimPrefix(f.name, "/")
		if f.link != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: f.link, Mode: 0o777, ModTime: fixedTime}); err != nil {
				return nil, err
			}
			continue
		}
		data, err := os.ReadFile(f.source)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f.source, err)
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: f.mode, Size: int64(len(data)), ModTime: fixedTime}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarDirectory writes dir's tree, relative to dir, as a tar file at out.
func tarDirectory(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	walkErr := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		header, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		header.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			header.Name += "/"
		}
		if err := tw.WriteHeader(header); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	closeErr := tw.Close()
	fileErr := f.Close()
	for _, err := range []error{walkErr, closeErr, fileErr} {
		if err != nil {
			return err
		}
	}
	return nil
}
