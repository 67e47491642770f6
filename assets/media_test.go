package assets

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"
)

// Headers of real files, built byte by byte. pad makes a head of SniffLen
// bytes, as a caller reading the start of an upload would pass.

func pad(b []byte) []byte {
	if len(b) >= SniffLen {
		return b
	}
	return append(b, make([]byte, SniffLen-len(b))...)
}

func cat(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		case byte:
			b = append(b, p)
		case int:
			b = append(b, byte(p))
		default:
			panic("cat: bad part")
		}
	}
	return b
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// ftyp is an ISO base media file type box.
func ftyp(major string, compat ...string) []byte {
	body := cat(major, "\x00\x00\x02\x00")
	for _, c := range compat {
		body = append(body, c...)
	}
	box := cat(be32(uint32(8+len(body))), "ftyp", body)
	// A free box and the start of mdat follow in a real file.
	return cat(box, be32(8), "free", be32(0x1000), "mdat", "\x00\x00\x00\x00")
}

// ebml is a Matroska/WebM EBML header as mkvmerge and ffmpeg write it.
func ebml(doctype string) []byte {
	body := cat(
		"\x42\x86\x81\x01", // EBMLVersion 1
		"\x42\xF7\x81\x01", // EBMLReadVersion 1
		"\x42\xF2\x81\x04", // EBMLMaxIDLength 4
		"\x42\xF3\x81\x08", // EBMLMaxSizeLength 8
		"\x42\x82", 0x80|len(doctype), doctype,
		"\x42\x87\x81\x04", // DocTypeVersion 4
		"\x42\x85\x81\x02", // DocTypeReadVersion 2
	)
	return cat("\x1A\x45\xDF\xA3", 0x80|len(body), body, "\x18\x53\x80\x67\x01\x00\x00\x00\x00\x00\x10\x00")
}

// oggPage is the first page of an Ogg stream holding one packet.
func oggPage(packet string) []byte {
	return cat("OggS", 0, 0x02, make([]byte, 8), le32(0x1234), le32(0), le32(0xDEADBEEF), 1, len(packet), packet)
}

// mp3Frames is n MPEG-1 layer III frames, 128 kbit/s, 44.1 kHz, no
// padding: 417 bytes each.
func mp3Frames(n int) []byte {
	var b []byte
	for range n {
		f := make([]byte, 417)
		copy(f, "\xFF\xFB\x90\x64")
		b = append(b, f...)
	}
	return b
}

// adtsFrames is n AAC-LC ADTS frames, 44.1 kHz stereo, of 300 bytes.
func adtsFrames(n int) []byte {
	const size = 300
	var b []byte
	for range n {
		f := make([]byte, size)
		copy(f, []byte{0xFF, 0xF1, 0x50, 0x80 | (size>>11)&3, (size >> 3) & 0xFF, (size&7)<<5 | 0x1F, 0xFC})
		b = append(b, f...)
	}
	return b
}

// id3 is an ID3v2.4 tag with one title frame.
func id3() []byte {
	frame := cat("TIT2", be32(6), "\x00\x00", "\x03hello")
	return cat("ID3\x04\x00\x00", 0, 0, 0, len(frame), frame)
}

func encoded(t testing.TB, enc func(*bytes.Buffer, image.Image) error) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 16, 8))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	var buf bytes.Buffer
	if err := enc(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type sniffCase struct {
	name string
	head []byte
	mime string
	kind Kind
}

func sniffCases(t testing.TB) []sniffCase {
	jpegFile := encoded(t, func(w *bytes.Buffer, m image.Image) error { return jpeg.Encode(w, m, nil) })
	pngFile := encoded(t, func(w *bytes.Buffer, m image.Image) error { return png.Encode(w, m) })
	gifFile := encoded(t, func(w *bytes.Buffer, m image.Image) error { return gif.Encode(w, m, nil) })
	return []sniffCase{
		{"jpeg jfif", pad(cat("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")), "image/jpeg", KindImage},
		{"jpeg exif", pad(cat("\xFF\xD8\xFF\xE1\x12\x34Exif\x00\x00MM\x00\x2A")), "image/jpeg", KindImage},
		{"jpeg encoded", jpegFile, "image/jpeg", KindImage},
		{"png", pad(cat("\x89PNG\r\n\x1A\n", be32(13), "IHDR", be32(640), be32(480), 8, 6, 0, 0, 0)), "image/png", KindImage},
		{"png encoded", pngFile, "image/png", KindImage},
		{"gif87a", pad(cat("GIF87a\x40\x01\xF0\x00\xF7\x00\x00")), "image/gif", KindImage},
		{"gif encoded", gifFile, "image/gif", KindImage},
		{"webp lossy", pad(cat("RIFF", le32(4000), "WEBPVP8 ", le32(3988))), "image/webp", KindImage},
		{"webp lossless", pad(cat("RIFF", le32(4000), "WEBPVP8L", le32(3988))), "image/webp", KindImage},
		{"heic iphone", pad(ftyp("heic", "mif1", "heic")), "image/heic", KindImage},
		{"heix", pad(ftyp("heix", "mif1", "heix")), "image/heic", KindImage},
		{"heif generic", pad(ftyp("mif1", "mif1", "miaf")), "image/heif", KindImage},
		{"heif generic, heic compatible", pad(ftyp("mif1", "mif1", "heic")), "image/heic", KindImage},
		{"heif generic, avif compatible", pad(ftyp("mif1", "mif1", "miaf", "avif")), "image/avif", KindImage},
		{"heif sequence", pad(ftyp("msf1", "msf1", "iso8")), "image/heif-sequence", KindImage},
		{"avif", pad(ftyp("avif", "avif", "mif1", "miaf", "MA1A")), "image/avif", KindImage},
		{"mp4 isom", pad(ftyp("isom", "isom", "iso2", "avc1", "mp41")), "video/mp4", KindVideo},
		{"mp4 mp42", pad(ftyp("mp42", "mp42", "isom")), "video/mp4", KindVideo},
		{"mp4 avc1", pad(ftyp("avc1", "avc1", "isom")), "video/mp4", KindVideo},
		{"mp4 iso2", pad(ftyp("iso2", "iso2", "mp41")), "video/mp4", KindVideo},
		{"mp4 unknown major, known compatible", pad(ftyp("XAVC", "XAVC", "mp42", "iso2")), "video/mp4", KindVideo},
		{"m4v", pad(ftyp("M4V ", "M4V ", "M4A ", "mp42", "isom")), "video/x-m4v", KindVideo},
		{"mov iphone", pad(ftyp("qt  ", "qt  ")), "video/quicktime", KindVideo},
		{"3gp", pad(ftyp("3gp4", "isom", "3gp4")), "video/3gpp", KindVideo},
		{"3gp5", pad(ftyp("3gp5", "3gp5", "isom")), "video/3gpp", KindVideo},
		{"3g2", pad(ftyp("3g2a", "3g2a")), "video/3gpp2", KindVideo},
		{"m4a", pad(ftyp("M4A ", "M4A ", "mp42", "isom")), "audio/mp4", KindAudio},
		{"ftyp unknown brands", pad(ftyp("crx ", "crx ", "isoz")), "application/octet-stream", KindFile},
		{"webm", pad(ebml("webm")), "video/webm", KindVideo},
		{"matroska", pad(ebml("matroska")), "video/x-matroska", KindVideo},
		{"ebml other doctype", pad(ebml("foo")), "application/octet-stream", KindFile},
		{"mp3 id3", pad(cat(id3(), mp3Frames(1))), "audio/mpeg", KindAudio},
		{"mp3 frames", mp3Frames(2), "audio/mpeg", KindAudio},
		{"mp3 frames, head of 512", mp3Frames(2)[:SniffLen], "audio/mpeg", KindAudio},
		{"one mp3 header, short file", mp3Frames(1)[:100], "application/octet-stream", KindFile},
		{"one adts header, short file", adtsFrames(1)[:100], "application/octet-stream", KindFile},
		{"mp3 one frame then junk", pad(cat(mp3Frames(1), "junk")), "application/octet-stream", KindFile},
		{"flac behind id3", pad(cat(id3(), "fLaC\x00\x00\x00\x22")), "audio/flac", KindAudio},
		{"aac behind id3", pad(cat(id3(), adtsFrames(1))), "audio/aac", KindAudio},
		{"aac adts", adtsFrames(2), "audio/aac", KindAudio},
		{"ogg opus", pad(oggPage("OpusHead\x01\x02\x38\x01\x80\xBB\x00\x00\x00\x00\x00")), "audio/ogg; codecs=opus", KindAudio},
		{"ogg vorbis", pad(oggPage("\x01vorbis\x00\x00\x00\x00\x02\x44\xAC\x00\x00")), "audio/ogg; codecs=vorbis", KindAudio},
		{"ogg theora", pad(oggPage("\x80theora\x03\x02\x01")), "video/ogg", KindVideo},
		{"ogg other", pad(oggPage("Speex   1.2")), "audio/ogg", KindAudio},
		{"wav", pad(cat("RIFF", le32(36000), "WAVEfmt ", le32(16), "\x01\x00\x02\x00", le32(44100))), "audio/wav", KindAudio},
		{"avi", pad(cat("RIFF", le32(36000), "AVI LIST")), "video/x-msvideo", KindVideo},
		{"riff other", pad(cat("RIFF", le32(36000), "CDXA")), "application/octet-stream", KindFile},
		{"flac", pad(cat("fLaC\x00\x00\x00\x22\x10\x00\x10\x00")), "audio/flac", KindAudio},
		{"amr", pad(cat("#!AMR\n\x3C")), "audio/amr", KindAudio},
		{"pdf", []byte("%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"), "application/pdf", KindFile},
		{"zip", pad(cat("PK\x03\x04\x14\x00\x00\x00\x08\x00", make([]byte, 16), "\x08\x00\x00\x00", "file.txt")), "application/zip", KindFile},
		{"docx is a zip", pad(cat("PK\x03\x04\x14\x00\x06\x00\x08\x00", make([]byte, 16), "\x13\x00\x00\x00", "[Content_Types].xml")), "application/zip", KindFile},
		{"empty zip", pad(cat("PK\x05\x06")), "application/zip", KindFile},
		{"text", []byte("hello, world\nsecond line\n"), "text/plain; charset=utf-8", KindFile},
		{"text utf-8", []byte("héllo wörld ✓\n"), "text/plain; charset=utf-8", KindFile},
		{"text cut inside a rune", []byte(strings.Repeat("a", SniffLen-1) + "✓"), "text/plain; charset=utf-8", KindFile},
		{"text utf-16", []byte("\xFF\xFEh\x00i\x00"), "text/plain; charset=utf-16le", KindFile},
		{"latin-1 text is not guessed", []byte("caf\xE9 cr\xE8me\n"), "application/octet-stream", KindFile},
		{"html is not served as html", []byte("<!DOCTYPE html><html><script>alert(1)</script></html>"), "application/octet-stream", KindFile},
		{"svg is not an image", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`), "application/octet-stream", KindFile},
		{"elf", pad(cat("\x7FELF\x02\x01\x01\x00")), "application/octet-stream", KindFile},
		{"exe", pad(cat("MZ\x90\x00\x03\x00\x00\x00\x04\x00")), "application/octet-stream", KindFile},
		{"empty", nil, "application/octet-stream", KindFile},
		{"truncated jpeg", []byte("\xFF\xD8"), "application/octet-stream", KindFile},
		{"truncated ftyp", []byte("\x00\x00\x00\x18ftypis"), "application/octet-stream", KindFile},
	}
}

func TestSniff(t *testing.T) {
	for _, c := range sniffCases(t) {
		mime, kind := Sniff(c.head)
		if mime != c.mime || kind != c.kind {
			t.Errorf("%s: Sniff = %q, %v; want %q, %v", c.name, mime, kind, c.mime, c.kind)
		}
	}
}

func TestSniffDoesNotAllocate(t *testing.T) {
	cases := sniffCases(t)
	allocs := testing.AllocsPerRun(10, func() {
		for _, c := range cases {
			Sniff(c.head)
		}
	})
	if allocs != 0 {
		t.Fatalf("Sniff allocates: %v allocations per run of %d cases", allocs, len(cases))
	}
}

func TestCheckClaim(t *testing.T) {
	pdf, pdfKind := Sniff([]byte("%PDF-1.7\n"))
	jpg, jpgKind := Sniff(pad(cat("\xFF\xD8\xFF\xE0")))
	png, pngKind := Sniff(pad(cat("\x89PNG\r\n\x1A\n")))
	mp4, mp4Kind := Sniff(pad(ftyp("isom", "isom")))
	elf, elfKind := Sniff(pad(cat("\x7FELF\x02\x01\x01\x00")))
	ogg, oggKind := Sniff(pad(oggPage("OpusHead")))
	for _, c := range []struct {
		claim  string
		mime   string
		kind   Kind
		refuse bool
	}{
		{"image/jpeg", jpg, jpgKind, false},
		{"IMAGE/JPEG", jpg, jpgKind, false},
		{"image/jpeg", png, pngKind, false}, // same kind: stored as PNG
		{"image/jpeg", pdf, pdfKind, true},  // a "photo" that is a PDF
		{"image/svg+xml", pdf, pdfKind, true},
		{"image/jpeg", mp4, mp4Kind, true},
		{"video/mp4", mp4, mp4Kind, false},
		{"video/mp4; codecs=avc1", mp4, mp4Kind, false},
		{" video/quicktime ", mp4, mp4Kind, false},
		{"video/mp4", elf, elfKind, true}, // a "video" that is an executable
		{"video/mp4", jpg, jpgKind, true},
		{"video/mp4", ogg, oggKind, true},
		{"application/pdf", jpg, jpgKind, false}, // a photo sent as a document
		{"application/octet-stream", elf, elfKind, false},
		{"audio/ogg", pdf, pdfKind, false}, // audio claims are ignored
		{"text/plain", elf, elfKind, false},
		{"", jpg, jpgKind, false},
		{"", elf, elfKind, false},
		{"garbage", elf, elfKind, false},
	} {
		err := CheckClaim(c.claim, c.mime, c.kind)
		if refused := errors.Is(err, ErrTypeMismatch); refused != c.refuse || err != nil && !refused {
			t.Errorf("CheckClaim(%q, %q, %v) = %v; want refused %v", c.claim, c.mime, c.kind, err, c.refuse)
		}
	}
}

func TestDisposition(t *testing.T) {
	for k, want := range map[Kind]string{
		KindImage: "inline", KindVideo: "inline", KindAudio: "inline",
		KindFile: "attachment", Kind(200): "attachment",
	} {
		if got := Disposition(k); got != want {
			t.Errorf("Disposition(%v) = %q, want %q", k, got, want)
		}
	}
}

func TestKindNames(t *testing.T) {
	for _, c := range []struct {
		k    Kind
		name string
	}{{KindFile, "file"}, {KindImage, "image"}, {KindVideo, "video"}, {KindAudio, "audio"}} {
		if got := c.k.String(); got != c.name {
			t.Errorf("%d.String() = %q, want %q", c.k, got, c.name)
		}
		if k, err := ParseKind(c.name); k != c.k || err != nil {
			t.Errorf("ParseKind(%q) = %v, %v", c.name, k, err)
		}
		b, err := json.Marshal(struct{ K Kind }{c.k})
		if want := `{"K":"` + c.name + `"}`; string(b) != want || err != nil {
			t.Errorf("json of %v = %s, %v; want %s", c.k, b, err, want)
		}
		var v struct{ K Kind }
		if err := json.Unmarshal(b, &v); err != nil || v.K != c.k {
			t.Errorf("json round trip of %v = %v, %v", c.k, v.K, err)
		}
	}
	for _, s := range []string{"", "Image", "photo", "document"} {
		if _, err := ParseKind(s); !errors.Is(err, ErrUnknownKind) {
			t.Errorf("ParseKind(%q) = %v, want ErrUnknownKind", s, err)
		}
	}
	if _, err := json.Marshal(Kind(9)); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("json of Kind(9): %v, want ErrUnknownKind", err)
	}
	if got := Kind(9).String(); got != "Kind(9)" {
		t.Errorf("Kind(9).String() = %q", got)
	}
}

// FuzzSniff: any bytes give a non-empty type whose top level agrees with
// the kind, without panicking.
func FuzzSniff(f *testing.F) {
	for _, c := range sniffCases(f) {
		f.Add(c.head)
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		mime, kind := Sniff(head)
		if mime == "" {
			t.Fatal("empty mime")
		}
		if kind > KindAudio {
			t.Fatalf("kind %d", kind)
		}
		if mk := mimeKind(mime); mk != kind {
			t.Fatalf("Sniff = %q, %v: the type says %v", mime, kind, mk)
		}
		if d := Disposition(kind); kind == KindFile && d != "attachment" {
			t.Fatalf("%q served %s", mime, d)
		}
	})
}
