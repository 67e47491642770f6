package assets

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

// ThumbOptions configures Thumbnail and VideoThumbnail. The zero value
// means the defaults.
type ThumbOptions struct {
	// MaxSide is the thumbnail's longer side, in pixels: an image is
	// scaled down to it, never up. Default 320; at most 4096.
	MaxSide int
	// Quality is the thumbnail's JPEG quality, 1 to 100. Default 75.
	Quality int
	// MaxPixels bounds the original's width × height: a larger image is
	// refused (ErrTooManyPixels) before any pixel is decoded, since a
	// small file can declare a huge image (a decompression bomb) and
	// decoding takes 1.5 to 4 bytes per pixel. Default 64,000,000
	// (64 megapixels: phone photos are 12 to 50).
	MaxPixels int64
}

// Defaults of ThumbOptions.
const (
	DefaultThumbMaxSide   = 320
	DefaultThumbQuality   = 75
	DefaultThumbMaxPixels = 64_000_000

	maxThumbSide = 4096
)

// Validate reports options out of range. Zero fields are valid: they
// mean the default.
func (o ThumbOptions) Validate() error {
	switch {
	case o.MaxSide < 0 || o.MaxSide > maxThumbSide:
		return fmt.Errorf("assets: ThumbOptions.MaxSide %d, want 1 to %d (0: %d)", o.MaxSide, maxThumbSide, DefaultThumbMaxSide)
	case o.Quality < 0 || o.Quality > 100:
		return fmt.Errorf("assets: ThumbOptions.Quality %d, want 1 to 100 (0: %d)", o.Quality, DefaultThumbQuality)
	case o.MaxPixels < 0:
		return fmt.Errorf("assets: ThumbOptions.MaxPixels %d, want > 0 (0: %d)", o.MaxPixels, DefaultThumbMaxPixels)
	}
	return nil
}

func (o ThumbOptions) withDefaults() (ThumbOptions, error) {
	if err := o.Validate(); err != nil {
		return o, err
	}
	if o.MaxSide == 0 {
		o.MaxSide = DefaultThumbMaxSide
	}
	if o.Quality == 0 {
		o.Quality = DefaultThumbQuality
	}
	if o.MaxPixels == 0 {
		o.MaxPixels = DefaultThumbMaxPixels
	}
	return o, nil
}

// Info describes an original image or video frame.
type Info struct {
	// Width and Height as displayed: after the JPEG's EXIF orientation
	// (a portrait photo stored sideways is taller than wide here), and
	// after a video's rotation.
	Width, Height int
}

// Thumb is a thumbnail and what it was made from.
type Thumb struct {
	// JPEG is the thumbnail, a baseline JPEG, upright: any EXIF
	// orientation of the original is applied to the pixels, and the
	// thumbnail carries no metadata.
	JPEG []byte
	// Width and Height of the thumbnail: the original's, scaled so that
	// the longer side is at most ThumbOptions.MaxSide.
	Width, Height int
	// Original is the original's size, for the message's attachment.
	Original Info
}

// Errors of Thumbnail and VideoThumbnail.
var (
	// ErrTooManyPixels: the image declares more than
	// ThumbOptions.MaxPixels pixels; nothing was decoded.
	ErrTooManyPixels = errors.New("assets: image has too many pixels to thumbnail")
	// ErrUnsupportedFormat: not a format this package makes thumbnails of.
	// Thumbnail decodes JPEG, PNG, GIF (the first frame) and WebP: not
	// HEIC or AVIF, which have no pure Go decoder. VideoThumbnail takes
	// the videos Sniff recognises.
	ErrUnsupportedFormat = errors.New("assets: no thumbnail for this format")
	// ErrBadImage: the image's bytes are corrupt or truncated. It wraps the
	// decoder's error.
	ErrBadImage = errors.New("assets: corrupt image")
	// ErrNoFFmpeg: no video thumbnails without ffmpeg. VideoThumbnail runs
	// the ffmpeg found on PATH; ffmpeg is optional, and without it videos
	// are sent without a server-made thumbnail.
	ErrNoFFmpeg = errors.New("assets: no video thumbnails without ffmpeg")
	// ErrBadVideo: ffmpeg could not read a frame from the video. It wraps
	// ffmpeg's exit error and quotes the start of what it wrote to stderr.
	ErrBadVideo = errors.New("assets: ffmpeg could not read a frame of the video")
)

// maxHeader bounds the bytes read before an image's dimensions (JPEG's
// APP segments: EXIF, ICC profile, XMP). Real files need tens of KiB.
const maxHeader = 4 << 20

// codec is a decoder Thumbnail uses, chosen by Sniff: only these are
// reachable, whatever other formats the binary registers with package
// image.
type codec struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

var codecs = map[string]codec{
	"image/jpeg": {jpeg.DecodeConfig, jpeg.Decode},
	"image/png":  {png.DecodeConfig, png.Decode},
	"image/gif":  {gif.DecodeConfig, gif.Decode},
	"image/webp": {webp.DecodeConfig, webp.Decode},
}

// scaler makes the thumbnail from the original's box-filtered reduction
// (shrink). CatmullRom weighs every source pixel under its kernel, widened
// to the reduction: no aliasing (moiré on fabric, brick, text), where
// ApproxBiLinear, almost free, blends 4 of every ~150 pixels of a phone
// photo reduced to 320. On a whole 12 MP original, though, CatmullRom took
// twice as long as the JPEG decode (+500 ms on the project's 2-vCPU
// machine) and allocated 30 MB more; so the original is first reduced by
// an integer factor with a box filter (exact means, one pass) to between 2
// and 4 times the thumbnail, and CatmullRom does the rest (as libvips's
// thumbnail does): +60 ms over the decode, against +10 ms for
// ApproxBiLinear alone. Measured by BenchmarkThumbnailScaler.
var scaler draw.Scaler = draw.CatmullRom

// prefilter turns the box-filter reduction before scaler on or off (for
// the benchmark that measures it).
var prefilter = true

// Thumbnail reads an image (JPEG, PNG, GIF or WebP, told by its bytes, not
// by any name) from r and returns a JPEG thumbnail of it: upright (JPEG
// EXIF orientation applied), scaled so that its longer side is at most
// opts.MaxSide, transparent areas on white; and the original's size.
//
// It reads the image's dimensions first and refuses one of more than
// opts.MaxPixels pixels (ErrTooManyPixels) without decoding it. Corrupt
// input is ErrBadImage (a panic in a decoder is recovered as one), a
// format it does not decode ErrUnsupportedFormat, an error reading r is
// returned as it is. It holds the decoded original in memory while it
// works: 1.5 bytes per pixel for a baseline JPEG (18 MB at 12 MP), about 6
// for a progressive one, 4 for the other formats; so the caller bounds how
// many run at once. Photos (JPEG in YCbCr or gray, PNG in 8-bit RGB(A) or
// gray) take the fast path; others (CMYK JPEG, 16-bit PNG, palettes) are
// scaled correctly but several times slower.
//
// Thumbnail is safe for concurrent use.
func Thumbnail(r io.Reader, opts ThumbOptions) (Thumb, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Thumb{}, err
	}
	br := bufio.NewReader(r)
	head, err := br.Peek(SniffLen)
	if err != nil && err != io.EOF {
		return Thumb{}, err
	}
	mime, _ := Sniff(head)
	c, ok := codecs[mime]
	if !ok {
		return Thumb{}, fmt.Errorf("%w: %s", ErrUnsupportedFormat, mime)
	}

	// Read the header, keeping what is read, then decode from the start
	// again: r is read once, whatever it is.
	rec := &recorder{r: br, keep: true}
	cfg, err := c.config(rec)
	if err != nil {
		return Thumb{}, rec.fail(err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return Thumb{}, fmt.Errorf("%w: %d×%d pixels", ErrBadImage, cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > o.MaxPixels {
		return Thumb{}, fmt.Errorf("%w: %d×%d, more than %d", ErrTooManyPixels, cfg.Width, cfg.Height, o.MaxPixels)
	}
	orientation := 1
	if mime == "image/jpeg" {
		orientation = jpegOrientation(rec.buf)
	}
	rec.keep = false
	img, err := decodeSafely(c.decode, io.MultiReader(bytes.NewReader(rec.buf), rec))
	if err != nil {
		return Thumb{}, rec.fail(err)
	}
	return thumbnailOf(img, orientation, o)
}

// thumbnailOf scales img (stored with EXIF orientation orientation) and
// encodes the thumbnail.
func thumbnailOf(img image.Image, orientation int, o ThumbOptions) (Thumb, error) {
	sr := img.Bounds()
	if sr.Empty() {
		return Thumb{}, fmt.Errorf("%w: empty image", ErrBadImage)
	}
	sw, sh := sr.Dx(), sr.Dy()
	w, h := sw, sh // as displayed
	if orientation >= 5 {
		w, h = h, w
	}
	tw, th := fit(w, h, o.MaxSide)
	dw, dh := tw, th // as stored
	if orientation >= 5 {
		dw, dh = dh, dw
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	op := draw.Src
	if !opaque(img) {
		// JPEG has no alpha: compose on white, as the apps show images.
		for i := range dst.Pix {
			dst.Pix[i] = 0xFF
		}
		op = draw.Over
	}
	if prefilter {
		// Reduce by k to at least twice the thumbnail's size.
		if k := min(sw/(2*dw), sh/(2*dh)); k >= 2 {
			img = shrink(img, k)
			sr = img.Bounds()
		}
	}
	scaler.Scale(dst, dst.Rect, img, sr, op, nil)
	dst = orient(dst, orientation)

	var buf bytes.Buffer
	buf.Grow(tw * th / 4)
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: o.Quality}); err != nil {
		return Thumb{}, err
	}
	return Thumb{JPEG: buf.Bytes(), Width: tw, Height: th, Original: Info{Width: w, Height: h}}, nil
}

// fit scales w×h so that the longer side is at most side, keeping the
// aspect ratio (rounded, at least one pixel).
func fit(w, h, side int) (int, int) {
	if w <= side && h <= side {
		return w, h
	}
	if w >= h {
		return side, max(1, int((int64(h)*int64(side)+int64(w)/2)/int64(w)))
	}
	return max(1, int((int64(w)*int64(side)+int64(h)/2)/int64(h))), side
}

// shrink reduces img by the factor k (at least 2) with a box filter: each
// pixel of the result is the mean of a k×k block (smaller at the right and
// bottom edges). It has fast paths for the images that the decoders return
// for photos (YCbCr from JPEG; Gray, RGBA and NRGBA from PNG), and returns
// other images unchanged, for the scaler to reduce on its own. The result
// is *image.Gray for a Gray image, else *image.RGBA, with its origin at
// (0, 0).
func shrink(img image.Image, k int) image.Image {
	sr := img.Bounds()
	w, h := sr.Dx(), sr.Dy()
	ow, oh := (w+k-1)/k, (h+k-1)/k
	switch src := img.(type) {
	case *image.YCbCr:
		hs, vs := chromaShifts(src.SubsampleRatio)
		dst := image.NewRGBA(image.Rect(0, 0, ow, oh))
		cx0, cy0 := sr.Min.X>>hs, sr.Min.Y>>vs
		for oy := range oh {
			y0, y1 := sr.Min.Y+oy*k, min(sr.Min.Y+oy*k+k, sr.Max.Y)
			for ox := range ow {
				x0, x1 := sr.Min.X+ox*k, min(sr.Min.X+ox*k+k, sr.Max.X)
				var sy, scb, scr int
				for y := y0; y < y1; y++ {
					yrow := src.Y[(y-sr.Min.Y)*src.YStride:]
					crow := ((y >> vs) - cy0) * src.CStride
					for x := x0; x < x1; x++ {
						c := crow + (x >> hs) - cx0
						sy += int(yrow[x-sr.Min.X])
						scb += int(src.Cb[c])
						scr += int(src.Cr[c])
					}
				}
				n := (y1 - y0) * (x1 - x0)
				r, g, b := color.YCbCrToRGB(uint8((sy+n/2)/n), uint8((scb+n/2)/n), uint8((scr+n/2)/n))
				i := dst.PixOffset(ox, oy)
				dst.Pix[i+0], dst.Pix[i+1], dst.Pix[i+2], dst.Pix[i+3] = r, g, b, 0xFF
			}
		}
		return dst
	case *image.Gray:
		dst := image.NewGray(image.Rect(0, 0, ow, oh))
		for oy := range oh {
			y0, y1 := oy*k, min(oy*k+k, h)
			for ox := range ow {
				x0, x1 := ox*k, min(ox*k+k, w)
				sum := 0
				for y := y0; y < y1; y++ {
					for _, v := range src.Pix[y*src.Stride+x0 : y*src.Stride+x1] {
						sum += int(v)
					}
				}
				n := (y1 - y0) * (x1 - x0)
				dst.Pix[oy*dst.Stride+ox] = uint8((sum + n/2) / n)
			}
		}
		return dst
	case *image.RGBA, *image.NRGBA:
		var pix []uint8
		var stride int
		premultiply := false
		if m, ok := src.(*image.RGBA); ok {
			pix, stride = m.Pix, m.Stride
		} else {
			m := src.(*image.NRGBA)
			pix, stride, premultiply = m.Pix, m.Stride, true
		}
		dst := image.NewRGBA(image.Rect(0, 0, ow, oh))
		for oy := range oh {
			y0, y1 := oy*k, min(oy*k+k, h)
			for ox := range ow {
				x0, x1 := ox*k, min(ox*k+k, w)
				var sr, sg, sb, sa int
				for y := y0; y < y1; y++ {
					row := pix[y*stride+4*x0 : y*stride+4*x1]
					for i := 0; i < len(row); i += 4 {
						r, g, b, a := int(row[i]), int(row[i+1]), int(row[i+2]), int(row[i+3])
						if premultiply {
							r, g, b = (r*a+127)/255, (g*a+127)/255, (b*a+127)/255
						}
						sr += r
						sg += g
						sb += b
						sa += a
					}
				}
				n := (y1 - y0) * (x1 - x0)
				i := dst.PixOffset(ox, oy)
				dst.Pix[i+0] = uint8((sr + n/2) / n)
				dst.Pix[i+1] = uint8((sg + n/2) / n)
				dst.Pix[i+2] = uint8((sb + n/2) / n)
				dst.Pix[i+3] = uint8((sa + n/2) / n)
			}
		}
		return dst
	}
	return img
}

// chromaShifts are the horizontal and vertical shifts from luma to chroma
// coordinates of a YCbCr subsample ratio.
func chromaShifts(r image.YCbCrSubsampleRatio) (hs, vs int) {
	switch r {
	case image.YCbCrSubsampleRatio422:
		return 1, 0
	case image.YCbCrSubsampleRatio420:
		return 1, 1
	case image.YCbCrSubsampleRatio440:
		return 0, 1
	case image.YCbCrSubsampleRatio411:
		return 2, 0
	case image.YCbCrSubsampleRatio410:
		return 2, 1
	}
	return 0, 0
}

func opaque(img image.Image) bool {
	o, ok := img.(interface{ Opaque() bool })
	return ok && o.Opaque()
}

func decodeSafely(decode func(io.Reader) (image.Image, error), r io.Reader) (img image.Image, err error) {
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("decoder panic: %v", p)
		}
	}()
	return decode(r)
}

// recorder reads from r, keeping what it reads while keep is set (up to
// maxHeader bytes), and remembers r's first error other than EOF, so that
// a failed read is not mistaken for a corrupt image.
type recorder struct {
	r       io.Reader
	keep    bool
	buf     []byte
	readErr error
}

var errHeaderTooLong = fmt.Errorf("%w: more than %d bytes before the image's dimensions", ErrBadImage, maxHeader)

func (rc *recorder) Read(p []byte) (int, error) {
	if rc.keep && len(rc.buf)+len(p) > maxHeader {
		p = p[:max(0, maxHeader-len(rc.buf))]
		if len(p) == 0 {
			return 0, errHeaderTooLong
		}
	}
	n, err := rc.r.Read(p)
	if rc.keep {
		rc.buf = append(rc.buf, p[:n]...)
	}
	if err != nil && err != io.EOF && rc.readErr == nil {
		rc.readErr = err
	}
	return n, err
}

// fail is the error to return for a decoder's error err.
func (rc *recorder) fail(err error) error {
	switch {
	case rc.readErr != nil:
		return rc.readErr
	case errors.Is(err, ErrBadImage):
		return err
	}
	return fmt.Errorf("%w: %w", ErrBadImage, err)
}

// jpegOrientation returns the EXIF orientation (1 to 8) of the JPEG whose
// start is b, or 1 (as stored) if it has none or b is not a JPEG. It reads
// the APP1 "Exif" segment before the first scan: a TIFF header and IFD0's
// tag 0x0112.
func jpegOrientation(b []byte) int {
	if !hasPrefix(b, "\xFF\xD8") {
		return 1
	}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			return 1
		}
		marker := b[i+1]
		switch {
		case marker == 0xFF: // fill byte
			i++
			continue
		case marker == 0x01 || marker >= 0xD0 && marker <= 0xD8: // no length
			i += 2
			continue
		case marker == 0xDA || marker == 0xD9: // start of scan, end of image
			return 1
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 || i+2+n > len(b) {
			return 1
		}
		seg := b[i+4 : i+2+n]
		if marker == 0xE1 && hasPrefix(seg, "Exif\x00\x00") {
			return exifOrientation(seg[6:])
		}
		i += 2 + n
	}
	return 1
}

// exifOrientation reads the orientation tag from IFD0 of the TIFF
// structure t, or returns 1.
func exifOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return 1
	}
	off := uint64(bo.Uint32(t[4:]))
	if off < 8 || off+2 > uint64(len(t)) {
		return 1
	}
	n := int(bo.Uint16(t[off:]))
	entries := t[off+2:]
	for i := 0; i < n && 12*i+12 <= len(entries); i++ {
		e := entries[12*i:]
		if bo.Uint16(e) != 0x0112 {
			continue
		}
		if bo.Uint16(e[2:]) != 3 || bo.Uint32(e[4:]) != 1 { // one SHORT
			return 1
		}
		if v := int(bo.Uint16(e[8:])); v >= 1 && v <= 8 {
			return v
		}
		return 1
	}
	return 1
}

// orient returns src turned upright from EXIF orientation o: the
// transform that displays an image stored with orientation o. Orientation
// 1 (or an invalid one) returns src itself. From the EXIF definition of
// where the stored 0th row and 0th column appear:
//
//	2: mirrored left-right     5: transposed (mirrored on the main diagonal)
//	3: turned 180°             6: turned 90° clockwise
//	4: mirrored top-bottom     7: transversed (mirrored on the anti-diagonal)
//	                           8: turned 90° counter-clockwise
func orient(src *image.RGBA, o int) *image.RGBA {
	if o < 2 || o > 8 {
		return src
	}
	w, h := src.Rect.Dx(), src.Rect.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := range h {
		row := src.Pix[y*src.Stride:]
		for x := range w {
			var dx, dy int
			switch o {
			case 2:
				dx, dy = w-1-x, y
			case 3:
				dx, dy = w-1-x, h-1-y
			case 4:
				dx, dy = x, h-1-y
			case 5:
				dx, dy = y, x
			case 6:
				dx, dy = h-1-y, x
			case 7:
				dx, dy = h-1-y, w-1-x
			case 8:
				dx, dy = y, w-1-x
			}
			copy(dst.Pix[dy*dst.Stride+4*dx:][:4], row[4*x:])
		}
	}
	return dst
}

// ffmpegDemuxers forces ffmpeg's demuxer by what Sniff says the file is,
// so that ffmpeg never probes the input itself: a file that ffmpeg would
// take for a playlist (HLS, concat) naming other files or URLs is not a
// video to Sniff, and never reaches ffmpeg.
var ffmpegDemuxers = map[string]string{
	"video/mp4":        "mov",
	"video/x-m4v":      "mov",
	"video/quicktime":  "mov",
	"video/3gpp":       "mov",
	"video/3gpp2":      "mov",
	"video/webm":       "matroska",
	"video/x-matroska": "matroska",
	"video/x-msvideo":  "avi",
	"video/ogg":        "ogg",
}

// lookFFmpeg finds ffmpeg; a variable for tests.
var lookFFmpeg = func() (string, error) { return exec.LookPath("ffmpeg") }

// VideoThumbnail makes a thumbnail of the first frame of the video in the
// file at path, as Thumbnail does of an image, with ffmpeg: the ffmpeg on
// PATH, looked up at each call. Without it, it returns ErrNoFFmpeg: no
// video thumbnails without ffmpeg (the product works without them; the
// sending app's own thumbnail is what the message carries).
//
// The file must be a video that Sniff recognises (else
// ErrUnsupportedFormat); ffmpeg reads only that file, with the demuxer
// that Sniff's type names and only the file protocol. ffmpeg's frame
// (rotated as the video says) comes back as a PNG through a pipe and is
// bounded by opts.MaxPixels like an image. ffmpeg is killed when ctx ends:
// give it a deadline. ffmpeg's failure to read a frame is ErrBadVideo.
// ffmpeg parses hostile input: run the server where that is acceptable, or
// leave ffmpeg off its PATH.
//
// VideoThumbnail is safe for concurrent use; each call runs one ffmpeg.
func VideoThumbnail(ctx context.Context, path string, opts ThumbOptions) (Thumb, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Thumb{}, err
	}
	ffmpeg, err := lookFFmpeg()
	if err != nil {
		return Thumb{}, fmt.Errorf("%w: %w", ErrNoFFmpeg, err)
	}
	demuxer, err := videoDemuxer(path)
	if err != nil {
		return Thumb{}, err
	}

	run, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(run, ffmpeg,
		"-nostdin", "-hide_banner", "-loglevel", "error",
		"-protocol_whitelist", "file",
		"-f", demuxer, "-i", "file:"+path,
		"-map", "0:v:0", "-frames:v", "1", "-an", "-sn", "-dn",
		"-f", "image2pipe", "-c:v", "png", "-pix_fmt", "rgb24", "pipe:1")
	stderr := &headBuffer{max: 1024}
	cmd.Stderr = stderr
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return Thumb{}, err
	}
	if err := cmd.Start(); err != nil {
		return Thumb{}, fmt.Errorf("assets: starting ffmpeg: %w", err)
	}
	th, err := Thumbnail(stdout, o)
	if err != nil {
		cancel() // ffmpeg may still be writing: stop it
	}
	_, _ = io.Copy(io.Discard, stdout)
	waitErr := cmd.Wait()
	switch {
	case err == nil:
		// The frame is whole (the PNG decoder reads to its end): how
		// ffmpeg exited after writing it does not matter.
		return th, nil
	case ctx.Err() != nil:
		return Thumb{}, fmt.Errorf("assets: video thumbnail: %w", context.Cause(ctx))
	case errors.Is(err, ErrTooManyPixels):
		return Thumb{}, err
	case waitErr != nil:
		return Thumb{}, fmt.Errorf("%w: %w: %s", ErrBadVideo, waitErr, strings.TrimSpace(stderr.String()))
	}
	return Thumb{}, fmt.Errorf("%w: %w", ErrBadVideo, err)
}

// videoDemuxer sniffs the file at path and returns ffmpeg's demuxer for
// it.
func videoDemuxer(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, SniffLen)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", err
	}
	mime, _ := Sniff(head[:n])
	demuxer, ok := ffmpegDemuxers[mime]
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrUnsupportedFormat, mime)
	}
	return demuxer, nil
}

// headBuffer keeps the first max bytes written to it.
type headBuffer struct {
	bytes.Buffer
	max int
}

func (b *headBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
