package assets

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/image/draw"
)

// photo is a w×h image that compresses and decodes like a photograph:
// smooth gradients, a few hard edges, and sensor noise.
func photo(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(1, 2))
	for y := range h {
		for x := range w {
			n := int(rng.IntN(17)) - 8
			r := 255*x/w + n
			g := 255*y/h + n
			b := 128 + n
			if (x/(w/8+1)+y/(h/6+1))%2 == 0 {
				b = 200 + n
			}
			i := img.PixOffset(x, y)
			img.Pix[i+0] = clamp8(r)
			img.Pix[i+1] = clamp8(g)
			img.Pix[i+2] = clamp8(b)
			img.Pix[i+3] = 0xFF
		}
	}
	return img
}

func clamp8(v int) uint8 { return uint8(min(255, max(0, v))) }

// halves is a w×h image, left half a, right half b.
func halves(w, h int, a, b color.Color) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, image.Rect(0, 0, w/2, h), image.NewUniform(a), image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(w/2, 0, w, h), image.NewUniform(b), image.Point{}, draw.Src)
	return img
}

func encodeJPEG(t testing.TB, img image.Image, quality int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encodeGIF(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gif.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bitWriter writes a little-endian bit stream, as VP8L reads it.
type bitWriter struct {
	b     []byte
	nbits uint
}

func (w *bitWriter) write(v uint32, n uint) {
	for i := range n {
		if w.nbits%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte(v>>i&1) << (w.nbits % 8)
		w.nbits++
	}
}

// losslessWebP is a w×h WebP (VP8L) of one color: no transforms, and five
// one-symbol prefix codes, so that each pixel takes no bits.
func losslessWebP(w, h int, c color.NRGBA) []byte {
	var bw bitWriter
	bw.write(0x2F, 8) // signature
	bw.write(uint32(w-1), 14)
	bw.write(uint32(h-1), 14)
	bw.write(0, 1) // alpha hint
	bw.write(0, 3) // version
	bw.write(0, 1) // no transform
	bw.write(0, 1) // no color cache
	bw.write(0, 1) // no meta prefix codes
	for _, sym := range []uint8{c.G, c.R, c.B, c.A, 0} {
		bw.write(1, 1) // simple code
		bw.write(0, 1) // one symbol
		bw.write(1, 1) // of 8 bits
		bw.write(uint32(sym), 8)
	}
	data := bw.b
	if len(data)%2 == 1 {
		data = append(data, 0)
	}
	chunk := cat("VP8L", le32(uint32(len(bw.b))), data)
	return cat("RIFF", le32(uint32(4+len(chunk))), "WEBP", chunk)
}

// withEXIF inserts an APP1 Exif segment with the orientation tag after
// the JPEG's SOI marker, in the byte order bo.
func withEXIF(jpg []byte, orientation int, bo binary.AppendByteOrder) []byte {
	tiff := []byte("II*\x00")
	if bo == binary.BigEndian {
		tiff = []byte("MM\x00*")
	}
	tiff = bo.AppendUint32(tiff, 8)
	tiff = bo.AppendUint16(tiff, 2) // entries
	// An unrelated tag first (ImageWidth, LONG), then Orientation.
	tiff = bo.AppendUint16(tiff, 0x0100)
	tiff = bo.AppendUint16(tiff, 4)
	tiff = bo.AppendUint32(tiff, 1)
	tiff = bo.AppendUint32(tiff, 4000)
	tiff = bo.AppendUint16(tiff, 0x0112)
	tiff = bo.AppendUint16(tiff, 3)
	tiff = bo.AppendUint32(tiff, 1)
	tiff = bo.AppendUint16(tiff, uint16(orientation))
	tiff = bo.AppendUint16(tiff, 0)
	tiff = bo.AppendUint32(tiff, 0) // no next IFD
	seg := cat("Exif\x00\x00", tiff)
	app1 := cat("\xFF\xE1", binary.BigEndian.AppendUint16(nil, uint16(2+len(seg))), seg)
	return cat(jpg[:2], app1, jpg[2:])
}

// pngHeader is a PNG signature and an IHDR chunk claiming w×h RGBA
// pixels, with a valid CRC, then the start of an IDAT chunk.
func pngHeader(w, h uint32) []byte {
	ihdr := cat("IHDR", be32(w), be32(h), 8, 6, 0, 0, 0)
	return cat("\x89PNG\r\n\x1A\n", be32(13), ihdr, be32(crc32.ChecksumIEEE(ihdr)),
		be32(1<<20), "IDAT\x78\x9C", make([]byte, 64))
}

func decodeThumb(t *testing.T, th Thumb) image.Image {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(th.JPEG))
	if err != nil {
		t.Fatalf("thumbnail is not a JPEG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != th.Width || b.Dy() != th.Height {
		t.Fatalf("thumbnail is %v, Thumb says %d×%d", b, th.Width, th.Height)
	}
	return img
}

// near reports whether c is within 24 of want in each channel (JPEG is
// lossy).
func near(c color.Color, want color.RGBA) bool {
	r, g, b, _ := c.RGBA()
	d := func(v uint32, w uint8) bool { return max(int(v>>8), int(w))-min(int(v>>8), int(w)) <= 24 }
	return d(r, want.R) && d(g, want.G) && d(b, want.B)
}

var (
	red   = color.RGBA{R: 230, G: 20, B: 20, A: 255}
	blue  = color.RGBA{R: 20, G: 20, B: 230, A: 255}
	white = color.RGBA{R: 255, G: 255, B: 255, A: 255}
)

func TestThumbnailFormatsAndSizes(t *testing.T) {
	img := halves(640, 480, red, blue)
	for _, c := range []struct {
		name          string
		data          []byte
		opts          ThumbOptions
		w, h, ow, oh  int
		checkHalves   bool
		uniform       *color.RGBA
		wantWhiteEdge bool
	}{
		{name: "jpeg", data: encodeJPEG(t, img, 90), w: 320, h: 240, ow: 640, oh: 480, checkHalves: true},
		{name: "png", data: encodePNG(t, img), w: 320, h: 240, ow: 640, oh: 480, checkHalves: true},
		{name: "gif", data: encodeGIF(t, img), w: 320, h: 240, ow: 640, oh: 480, checkHalves: true},
		{name: "webp", data: losslessWebP(640, 480, color.NRGBA{R: 230, G: 20, B: 20, A: 255}), w: 320, h: 240, ow: 640, oh: 480, uniform: &red},
		{name: "max side 100", data: encodePNG(t, img), opts: ThumbOptions{MaxSide: 100}, w: 100, h: 75, ow: 640, oh: 480, checkHalves: true},
		{name: "portrait", data: encodePNG(t, halves(200, 1000, red, blue)), w: 64, h: 320, ow: 200, oh: 1000, checkHalves: true},
		{name: "panorama", data: encodePNG(t, halves(4000, 10, red, blue)), w: 320, h: 1, ow: 4000, oh: 10},
		{name: "small: not scaled up", data: encodeJPEG(t, halves(120, 90, red, blue), 90), w: 120, h: 90, ow: 120, oh: 90, checkHalves: true},
		{name: "transparent png on white", data: encodePNG(t, image.NewNRGBA(image.Rect(0, 0, 640, 480))), w: 320, h: 240, ow: 640, oh: 480, uniform: &white},
	} {
		t.Run(c.name, func(t *testing.T) {
			th, err := Thumbnail(bytes.NewReader(c.data), c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if th.Width != c.w || th.Height != c.h || th.Original != (Info{c.ow, c.oh}) {
				t.Fatalf("thumbnail %d×%d of %+v, want %d×%d of %d×%d", th.Width, th.Height, th.Original, c.w, c.h, c.ow, c.oh)
			}
			got := decodeThumb(t, th)
			if c.checkHalves {
				if l, r := got.At(2, c.h/2), got.At(c.w-3, c.h/2); !near(l, red) || !near(r, blue) {
					t.Errorf("left %v, right %v: want red, blue", l, r)
				}
			}
			if c.uniform != nil {
				for _, p := range []image.Point{{0, 0}, {c.w / 2, c.h / 2}, {c.w - 1, c.h - 1}} {
					if px := got.At(p.X, p.Y); !near(px, *c.uniform) {
						t.Errorf("pixel %v = %v, want %v", p, px, *c.uniform)
					}
				}
			}
		})
	}
}

func TestThumbnailQuality(t *testing.T) {
	data := encodePNG(t, photo(640, 480))
	low, err := Thumbnail(bytes.NewReader(data), ThumbOptions{Quality: 20})
	if err != nil {
		t.Fatal(err)
	}
	high, err := Thumbnail(bytes.NewReader(data), ThumbOptions{Quality: 95})
	if err != nil {
		t.Fatal(err)
	}
	if len(low.JPEG) >= len(high.JPEG) {
		t.Fatalf("quality 20: %d bytes, quality 95: %d bytes", len(low.JPEG), len(high.JPEG))
	}
}

// Fine stripes must come out as the gray they average to, not as moiré:
// the scaler must weigh every source pixel (thumb.go, scaler).
func TestThumbnailDoesNotAlias(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 1600, 1200))
	for y := range 1200 {
		for x := range 1600 {
			if (x+y/3)%2 == 0 {
				img.Pix[img.PixOffset(x, y)] = 255
			}
		}
	}
	th, err := Thumbnail(bytes.NewReader(encodePNG(t, img)), ThumbOptions{Quality: 95})
	if err != nil {
		t.Fatal(err)
	}
	got := decodeThumb(t, th)
	b := got.Bounds()
	for y := b.Min.Y + 2; y < b.Max.Y-2; y++ {
		for x := b.Min.X + 2; x < b.Max.X-2; x++ {
			if v := color.GrayModel.Convert(got.At(x, y)).(color.Gray).Y; v < 112 || v > 144 {
				t.Fatalf("pixel (%d,%d) = %d: stripes averaging 128 aliased", x, y, v)
			}
		}
	}
}

// shrink's blocks are the means of the original's pixels, for every
// image type it has a fast path for, at any origin and with blocks cut
// short at the edges.
func TestShrink(t *testing.T) {
	const w, h = 37, 23
	src := photo(w+5, h+7)
	var imgs []image.Image
	for _, r := range []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	} {
		m := image.NewYCbCr(src.Bounds(), r)
		for y := range src.Rect.Dy() {
			for x := range src.Rect.Dx() {
				c := src.RGBAAt(x, y)
				yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
				m.Y[m.YOffset(x, y)] = yy
				m.Cb[m.COffset(x, y)] = cb
				m.Cr[m.COffset(x, y)] = cr
			}
		}
		imgs = append(imgs, m)
	}
	gray := image.NewGray(src.Bounds())
	draw.Draw(gray, gray.Rect, src, image.Point{}, draw.Src)
	nrgba := image.NewNRGBA(src.Bounds())
	for i := range nrgba.Pix {
		nrgba.Pix[i] = src.Pix[i]
		if i%4 == 3 {
			nrgba.Pix[i] = byte(i * 13)
		}
	}
	rgba := image.NewRGBA(src.Bounds())
	draw.Draw(rgba, rgba.Rect, nrgba, image.Point{}, draw.Src)
	imgs = append(imgs, gray, rgba, nrgba)

	type subImager interface {
		SubImage(image.Rectangle) image.Image
	}
	for _, whole := range imgs {
		for _, k := range []int{2, 3, 5} {
			img := whole.(subImager).SubImage(image.Rect(3, 5, 3+w, 5+h))
			got := shrink(img, k)
			name := fmt.Sprintf("%T k=%d", img, k)
			if m, ok := img.(*image.YCbCr); ok {
				name += " " + m.SubsampleRatio.String()
			}
			if b := got.Bounds(); b != image.Rect(0, 0, (w+k-1)/k, (h+k-1)/k) {
				t.Errorf("%s: %v", name, b)
				continue
			}
			for oy := range got.Bounds().Dy() {
				for ox := range got.Bounds().Dx() {
					var sum [4]int
					n := 0
					for y := 5 + oy*k; y < min(5+oy*k+k, 5+h); y++ {
						for x := 3 + ox*k; x < min(3+ox*k+k, 3+w); x++ {
							c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
							sum[0] += int(c.R)
							sum[1] += int(c.G)
							sum[2] += int(c.B)
							sum[3] += int(c.A)
							n++
						}
					}
					c := color.RGBAModel.Convert(got.At(ox, oy)).(color.RGBA)
					for i, v := range []uint8{c.R, c.G, c.B, c.A} {
						if want := (sum[i] + n/2) / n; max(int(v), want)-min(int(v), want) > 2 {
							t.Fatalf("%s: block (%d,%d) channel %d = %d, want %d", name, ox, oy, i, v, want)
						}
					}
				}
			}
		}
	}
	// Other images are left to the scaler.
	p := image.NewPaletted(image.Rect(0, 0, 10, 10), color.Palette{color.Black})
	if got := shrink(p, 2); got != image.Image(p) {
		t.Errorf("paletted: %T", got)
	}
}

func TestThumbnailRefusesDecompressionBombs(t *testing.T) {
	jpegBomb := encodeJPEG(t, image.NewGray(image.Rect(0, 0, 8, 8)), 75)
	// Rewrite the SOF0 frame's dimensions to 60000×60000.
	sof := bytes.Index(jpegBomb, []byte{0xFF, 0xC0})
	binary.BigEndian.PutUint16(jpegBomb[sof+5:], 60000)
	binary.BigEndian.PutUint16(jpegBomb[sof+7:], 60000)
	gifBomb := encodeGIF(t, image.NewPaletted(image.Rect(0, 0, 8, 8), color.Palette{color.Black, color.White}))
	binary.LittleEndian.PutUint16(gifBomb[6:], 65535)
	binary.LittleEndian.PutUint16(gifBomb[8:], 65535)
	for name, data := range map[string][]byte{
		"png 100000×100000": pngHeader(100000, 100000),
		"jpeg 60000×60000":  jpegBomb,
		"gif 65535×65535":   gifBomb,
		"webp 16384×16384":  losslessWebP(16384, 16384, color.NRGBA{A: 255}),
	} {
		start := time.Now()
		_, err := Thumbnail(bytes.NewReader(data), ThumbOptions{})
		if !errors.Is(err, ErrTooManyPixels) {
			t.Errorf("%s: %v, want ErrTooManyPixels", name, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: refused after %v: it was decoded", name, d)
		}
	}
	// The bound is the option's.
	data := encodePNG(t, image.NewGray(image.Rect(0, 0, 100, 100)))
	if _, err := Thumbnail(bytes.NewReader(data), ThumbOptions{MaxPixels: 9999}); !errors.Is(err, ErrTooManyPixels) {
		t.Errorf("100×100 with MaxPixels 9999: %v", err)
	}
	if _, err := Thumbnail(bytes.NewReader(data), ThumbOptions{MaxPixels: 10000}); err != nil {
		t.Errorf("100×100 with MaxPixels 10000: %v", err)
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestThumbnailBadInput(t *testing.T) {
	jpg := encodeJPEG(t, photo(400, 300), 90)
	pngData := encodePNG(t, photo(400, 300))
	garbage := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	manyAPP := []byte("\xFF\xD8")
	for len(manyAPP) < maxHeader+1<<16 {
		manyAPP = append(manyAPP, 0xFF, 0xE2, 0xFF, 0xFF)
		manyAPP = append(manyAPP, make([]byte, 0xFFFD)...)
	}
	manyAPP = append(manyAPP, jpg[2:]...)
	for _, c := range []struct {
		name string
		data []byte
		want error
	}{
		{"truncated jpeg", jpg[:len(jpg)/2], ErrBadImage},
		{"jpeg header only", jpg[:200], ErrBadImage},
		{"jpeg, garbage after the header", cat(jpg[:700], garbage), ErrBadImage},
		{"truncated png", pngData[:len(pngData)/2], ErrBadImage},
		{"png, bad crc", func() []byte { b := bytes.Clone(pngData); b[29] ^= 0xFF; return b }(), ErrBadImage},
		{"png signature then garbage", cat("\x89PNG\r\n\x1A\n", garbage), ErrBadImage},
		{"png 0×0", pngHeader(0, 0), ErrBadImage},
		{"png 2^31-1×2^31-1", pngHeader(1<<31-1, 1<<31-1), ErrBadImage},
		{"gif header only", []byte("GIF89a\x10\x00\x10\x00"), ErrBadImage},
		{"webp header only", []byte("RIFF\x20\x00\x00\x00WEBPVP8L"), ErrBadImage},
		{"jpeg, endless APP segments", manyAPP, ErrBadImage},
		{"pdf", []byte("%PDF-1.7\n"), ErrUnsupportedFormat},
		{"heic", pad(ftyp("heic", "mif1", "heic")), ErrUnsupportedFormat},
		{"garbage", garbage, ErrUnsupportedFormat},
		{"empty", nil, ErrUnsupportedFormat},
	} {
		th, err := Thumbnail(bytes.NewReader(c.data), ThumbOptions{})
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if th.JPEG != nil {
			t.Errorf("%s: a thumbnail with the error", c.name)
		}
	}

	// An error reading the input is returned as it is, not as a corrupt
	// image.
	errDisk := errors.New("disk on fire")
	for _, n := range []int{0, 100, len(jpg) / 2} {
		_, err := Thumbnail(&failingReader{data: jpg[:n], err: errDisk}, ThumbOptions{})
		if !errors.Is(err, errDisk) || errors.Is(err, ErrBadImage) {
			t.Errorf("read error after %d bytes: %v, want the read error", n, err)
		}
	}
}

func TestThumbOptionsValidate(t *testing.T) {
	for _, o := range []ThumbOptions{
		{MaxSide: -1}, {MaxSide: 4097}, {Quality: -1}, {Quality: 101}, {MaxPixels: -1},
	} {
		if o.Validate() == nil {
			t.Errorf("%+v: valid", o)
		}
		if _, err := Thumbnail(bytes.NewReader(encodePNG(t, photo(10, 10))), o); err == nil {
			t.Errorf("Thumbnail with %+v: no error", o)
		}
	}
	for _, o := range []ThumbOptions{{}, {MaxSide: 1, Quality: 1, MaxPixels: 1}, {MaxSide: 4096, Quality: 100}} {
		if err := o.Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

// corners marks a w×h image: top-left red, top-right green, bottom-left
// blue, the rest black.
func corners(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	img.Set(0, 0, color.RGBA{R: 255, A: 255})
	img.Set(w-1, 0, color.RGBA{G: 255, A: 255})
	img.Set(0, h-1, color.RGBA{B: 255, A: 255})
	return img
}

func TestOrient(t *testing.T) {
	const w, h = 3, 2
	type pos struct{ x, y int }
	// Where the stored top-left (red), top-right (green) and bottom-left
	// (blue) corners are displayed, from the EXIF definitions of where the
	// 0th row and column go: e.g. 6, "0th row is the visual right side,
	// 0th column the visual top".
	const (
		tl = iota
		tr
		bl
		br
	)
	at := func(corner, dw, dh int) pos {
		return [...]pos{{0, 0}, {dw - 1, 0}, {0, dh - 1}, {dw - 1, dh - 1}}[corner]
	}
	for _, c := range []struct {
		o                  int
		red, green, blueAt int
		swapped            bool
	}{
		{1, tl, tr, bl, false},
		{2, tr, tl, br, false},
		{3, br, bl, tr, false},
		{4, bl, br, tl, false},
		{5, tl, bl, tr, true},
		{6, tr, br, tl, true},
		{7, br, tr, bl, true},
		{8, bl, tl, br, true},
	} {
		got := orient(corners(w, h), c.o)
		dw, dh := w, h
		if c.swapped {
			dw, dh = h, w
		}
		if b := got.Bounds(); b.Dx() != dw || b.Dy() != dh {
			t.Errorf("orientation %d: %v, want %d×%d", c.o, b, dw, dh)
			continue
		}
		for _, m := range []struct {
			corner int
			want   color.RGBA
		}{{c.red, color.RGBA{R: 255, A: 255}}, {c.green, color.RGBA{G: 255, A: 255}}, {c.blueAt, color.RGBA{B: 255, A: 255}}} {
			p := at(m.corner, dw, dh)
			if px := got.RGBAAt(p.x, p.y); px != m.want {
				t.Errorf("orientation %d: %v at %v, want %v", c.o, px, p, m.want)
			}
		}
	}
}

func TestThumbnailHonoursEXIFOrientation(t *testing.T) {
	// Stored 400×200, left red, right blue; orientation 6 (the camera was
	// turned clockwise): displayed 200×400, red on top; thumbnail 160×320.
	for _, bo := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		data := withEXIF(encodeJPEG(t, halves(400, 200, red, blue), 90), 6, bo)
		if o := jpegOrientation(data); o != 6 {
			t.Fatalf("%v: jpegOrientation = %d, want 6", bo, o)
		}
		th, err := Thumbnail(bytes.NewReader(data), ThumbOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if th.Width != 160 || th.Height != 320 || th.Original != (Info{200, 400}) {
			t.Fatalf("%v: %d×%d of %+v, want 160×320 of 200×400", bo, th.Width, th.Height, th.Original)
		}
		img := decodeThumb(t, th)
		if top, bottom := img.At(80, 2), img.At(80, 317); !near(top, red) || !near(bottom, blue) {
			t.Errorf("%v: top %v, bottom %v; want red, blue", bo, top, bottom)
		}
	}
	// Orientation 8, scaled: 1000×500 displayed as 160×320, red at the
	// bottom.
	data := withEXIF(encodeJPEG(t, halves(1000, 500, red, blue), 90), 8, binary.BigEndian)
	th, err := Thumbnail(bytes.NewReader(data), ThumbOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if th.Width != 160 || th.Height != 320 || th.Original != (Info{500, 1000}) {
		t.Fatalf("%d×%d of %+v, want 160×320 of 500×1000", th.Width, th.Height, th.Original)
	}
	img := decodeThumb(t, th)
	if top, bottom := img.At(80, 2), img.At(80, 317); !near(top, blue) || !near(bottom, red) {
		t.Errorf("top %v, bottom %v; want blue, red", top, bottom)
	}
}

func TestJPEGOrientation(t *testing.T) {
	jpg := encodeJPEG(t, photo(16, 16), 75)
	for o := 1; o <= 8; o++ {
		if got := jpegOrientation(withEXIF(jpg, o, binary.LittleEndian)); got != o {
			t.Errorf("orientation %d read as %d", o, got)
		}
	}
	for name, data := range map[string][]byte{
		"no exif":          jpg,
		"orientation 0":    withEXIF(jpg, 0, binary.BigEndian),
		"orientation 9":    withEXIF(jpg, 9, binary.BigEndian),
		"not a jpeg":       encodePNG(t, photo(4, 4)),
		"truncated exif":   withEXIF(jpg, 6, binary.BigEndian)[:30],
		"empty":            nil,
		"bad tiff header":  bytes.Replace(withEXIF(jpg, 6, binary.BigEndian), []byte("MM\x00*"), []byte("XX\x00*"), 1),
		"ifd offset large": bytes.Replace(withEXIF(jpg, 6, binary.BigEndian), []byte("MM\x00*\x00\x00\x00\x08"), []byte("MM\x00*\x7F\x00\x00\x08"), 1),
	} {
		if got := jpegOrientation(data); got != 1 {
			t.Errorf("%s: %d, want 1", name, got)
		}
	}
}

func FuzzJPEGOrientation(f *testing.F) {
	jpg := encodeJPEG(f, photo(8, 8), 75)
	f.Add(jpg)
	f.Add(withEXIF(jpg, 6, binary.LittleEndian))
	f.Add(withEXIF(jpg, 3, binary.BigEndian))
	f.Fuzz(func(t *testing.T, b []byte) {
		if o := jpegOrientation(b); o < 1 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
	})
}

// FuzzThumbnail: any bytes give a thumbnail within the bounds, or an
// error; never a panic.
func FuzzThumbnail(f *testing.F) {
	small := photo(40, 30)
	f.Add(encodeJPEG(f, small, 75))
	f.Add(withEXIF(encodeJPEG(f, small, 75), 6, binary.LittleEndian))
	f.Add(encodePNG(f, small))
	f.Add(encodeGIF(f, small))
	f.Add(losslessWebP(40, 30, color.NRGBA{R: 1, G: 2, B: 3, A: 4}))
	f.Add(pngHeader(1000, 1000))
	opts := ThumbOptions{MaxSide: 32, MaxPixels: 1 << 16}
	f.Fuzz(func(t *testing.T, b []byte) {
		th, err := Thumbnail(bytes.NewReader(b), opts)
		if err != nil {
			return
		}
		if th.Width < 1 || th.Height < 1 || th.Width > 32 || th.Height > 32 {
			t.Fatalf("%d×%d", th.Width, th.Height)
		}
		if _, err := jpeg.DecodeConfig(bytes.NewReader(th.JPEG)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestVideoThumbnailWithoutFFmpeg(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := VideoThumbnail(context.Background(), filepath.Join(t.TempDir(), "v.mp4"), ThumbOptions{})
	if !errors.Is(err, ErrNoFFmpeg) {
		t.Fatalf("%v, want ErrNoFFmpeg", err)
	}
}

// fakeFFmpeg puts on PATH an "ffmpeg" shell script with body script, and
// returns the file it records its arguments in.
func fakeFFmpeg(t *testing.T, script string) (argsFile string) {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to run a fake ffmpeg")
	}
	dir := t.TempDir()
	argsFile = filepath.Join(dir, "args")
	body := fmt.Sprintf("#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > %q\n%s\n", argsFile, script)
	if err := os.WriteFile(filepath.Join(dir, "ffmpeg"), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return argsFile
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The pipeline around ffmpeg, with a script in its place: the arguments,
// the frame read from its stdout, its errors.
func TestVideoThumbnailPipeline(t *testing.T) {
	frame := writeFile(t, "frame.png", encodePNG(t, halves(1280, 720, red, blue)))
	video := writeFile(t, "v.mp4", pad(ftyp("isom", "isom", "avc1")))
	argsFile := fakeFFmpeg(t, fmt.Sprintf("cat %q", frame))

	th, err := VideoThumbnail(context.Background(), video, ThumbOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if th.Width != 320 || th.Height != 180 || th.Original != (Info{1280, 720}) {
		t.Fatalf("%d×%d of %+v, want 320×180 of 1280×720", th.Width, th.Height, th.Original)
	}
	img := decodeThumb(t, th)
	if l, r := img.At(2, 90), img.At(317, 90); !near(l, red) || !near(r, blue) {
		t.Errorf("left %v, right %v", l, r)
	}
	args, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-f\nmov\n-i\nfile:" + video + "\n", "-protocol_whitelist\nfile\n", "-frames:v\n1\n", "-nostdin\n"} {
		if !strings.Contains(string(args), want) {
			t.Errorf("ffmpeg arguments lack %q:\n%s", want, args)
		}
	}

	// A WebM is read with the Matroska demuxer.
	webm := writeFile(t, "v.webm", pad(ebml("webm")))
	if _, err := VideoThumbnail(context.Background(), webm, ThumbOptions{}); err != nil {
		t.Fatal(err)
	}
	if args, _ := os.ReadFile(argsFile); !strings.Contains(string(args), "-f\nmatroska\n-i\nfile:"+webm+"\n") {
		t.Errorf("webm: ffmpeg arguments:\n%s", args)
	}

	// Not a video: ffmpeg never runs.
	_ = os.Remove(argsFile)
	for _, data := range [][]byte{[]byte("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\nfile:///etc/passwd\n"), encodePNG(t, photo(8, 8)), pad(oggPage("OpusHead"))} {
		path := writeFile(t, "x.mp4", data)
		if _, err := VideoThumbnail(context.Background(), path, ThumbOptions{}); !errors.Is(err, ErrUnsupportedFormat) {
			t.Errorf("%.10q: %v, want ErrUnsupportedFormat", data, err)
		}
	}
	if _, err := os.Stat(argsFile); err == nil {
		t.Error("ffmpeg ran on a file that is not a video")
	}

	// A frame over the pixel bound.
	if _, err := VideoThumbnail(context.Background(), video, ThumbOptions{MaxPixels: 1000}); !errors.Is(err, ErrTooManyPixels) {
		t.Errorf("MaxPixels 1000: %v", err)
	}
}

func TestVideoThumbnailFFmpegFails(t *testing.T) {
	video := writeFile(t, "v.mp4", pad(ftyp("isom", "isom")))
	fakeFFmpeg(t, `echo "moov atom not found" >&2; exit 1`)
	_, err := VideoThumbnail(context.Background(), video, ThumbOptions{})
	if !errors.Is(err, ErrBadVideo) || !strings.Contains(err.Error(), "moov atom not found") {
		t.Fatalf("%v, want ErrBadVideo quoting ffmpeg", err)
	}
}

func TestVideoThumbnailContext(t *testing.T) {
	video := writeFile(t, "v.mp4", pad(ftyp("isom", "isom")))
	fakeFFmpeg(t, `exec sleep 60`)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := VideoThumbnail(ctx, video, ThumbOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v, want the context's error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("returned after %v", d)
	}
}

// With a real ffmpeg, when there is one: it is optional, not a server the
// product needs, so the test skips without it.
func TestVideoThumbnailFFmpeg(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not on PATH: optional; VideoThumbnail returns ErrNoFFmpeg without it (TestVideoThumbnailWithoutFFmpeg)")
	}
	dir := t.TempDir()
	for _, c := range []struct{ name, codec string }{{"v.mp4", "mpeg4"}, {"v.webm", "libvpx"}, {"v.mkv", "mpeg4"}} {
		path := filepath.Join(dir, c.name)
		out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi",
			"-i", "testsrc=size=640x360:rate=10:duration=1", "-c:v", c.codec, path).CombinedOutput()
		if err != nil {
			t.Logf("%s: cannot make a test video with %s: %v %s", c.name, c.codec, err, out)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		th, err := VideoThumbnail(ctx, path, ThumbOptions{})
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if th.Width != 320 || th.Height != 180 || th.Original != (Info{640, 360}) {
			t.Fatalf("%s: %d×%d of %+v, want 320×180 of 640×360", c.name, th.Width, th.Height, th.Original)
		}
		decodeThumb(t, th)
	}
}

// Benchmarks: "thumbnail generation time per image", a JPEG from a phone
// camera (12 MP) and a 1080p one, read from memory. Reproduce with
//
//	go test -run '^$' -bench 'Thumbnail' -benchtime 20x ./assets/

var (
	benchOnce             sync.Once
	bench12MP, bench1080p []byte
)

func benchJPEGs(b *testing.B) {
	benchOnce.Do(func() {
		bench12MP = withEXIF(encodeJPEG(b, photo(4000, 3000), 90), 6, binary.BigEndian)
		bench1080p = encodeJPEG(b, photo(1920, 1080), 90)
	})
}

func benchThumbnail(b *testing.B, data []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Thumbnail(bytes.NewReader(data), ThumbOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkThumbnailJPEG12MP: a 4000×3000 JPEG (quality 90, about the
// size of a phone's), EXIF orientation 6.
func BenchmarkThumbnailJPEG12MP(b *testing.B) {
	benchJPEGs(b)
	benchThumbnail(b, bench12MP)
}

// BenchmarkThumbnailJPEG1080p: a 1920×1080 JPEG (quality 90).
func BenchmarkThumbnailJPEG1080p(b *testing.B) {
	benchJPEGs(b)
	benchThumbnail(b, bench1080p)
}

// BenchmarkThumbnailDecodeOnly12MP is the JPEG decode alone, the floor
// under BenchmarkThumbnailJPEG12MP.
func BenchmarkThumbnailDecodeOnly12MP(b *testing.B) {
	benchJPEGs(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(bench12MP)))
	for b.Loop() {
		if _, err := jpeg.Decode(bytes.NewReader(bench12MP)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkThumbnailScaler compares the scalers on the 12 MP photo, on
// the original and after the box filter (the choice in thumb.go, scaler).
func BenchmarkThumbnailScaler(b *testing.B) {
	benchJPEGs(b)
	defer func(s draw.Scaler, p bool) { scaler, prefilter = s, p }(scaler, prefilter)
	for _, s := range []struct {
		name string
		s    draw.Scaler
	}{{"ApproxBiLinear", draw.ApproxBiLinear}, {"BiLinear", draw.BiLinear}, {"CatmullRom", draw.CatmullRom}} {
		for _, p := range []bool{false, true} {
			name := s.name
			if p {
				name = "box+" + name
			}
			b.Run(name, func(b *testing.B) {
				scaler, prefilter = s.s, p
				benchThumbnail(b, bench12MP)
			})
		}
	}
}

var _ io.Reader = (*recorder)(nil)
