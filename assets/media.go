package assets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Kind is what an asset is to the product: a photo, a video, a voice note
// or other audio, or any other file. It decides how a message shows the
// asset and how a download is served (Disposition).
type Kind uint8

// Kinds. The zero value is KindFile, the kind that promises nothing.
const (
	KindFile Kind = iota
	KindImage
	KindVideo
	KindAudio
)

var kindNames = [...]string{
	KindFile:  "file",
	KindImage: "image",
	KindVideo: "video",
	KindAudio: "audio",
}

// ErrUnknownKind: ParseKind or UnmarshalText of a name that is not a Kind.
var ErrUnknownKind = errors.New("assets: unknown kind")

// String returns the kind's wire name: "file", "image", "video" or
// "audio".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// ParseKind parses a wire name (exactly, lowercase); anything else is
// ErrUnknownKind.
func ParseKind(s string) (Kind, error) {
	for k, name := range kindNames {
		if s == name {
			return Kind(k), nil
		}
	}
	if len(s) > 32 {
		s = s[:32] + "…"
	}
	return KindFile, fmt.Errorf("%w: %q", ErrUnknownKind, s)
}

// MarshalText encodes the wire name, so that JSON carries "image", not 1.
func (k Kind) MarshalText() ([]byte, error) {
	if int(k) >= len(kindNames) {
		return nil, fmt.Errorf("%w: %d", ErrUnknownKind, uint8(k))
	}
	return []byte(kindNames[k]), nil
}

// UnmarshalText decodes a wire name (ParseKind).
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// SniffLen is how many leading bytes Sniff wants: give it at least this
// many when the content has them (as net/http.DetectContentType).
const SniffLen = 512

// MIME types named in more than one place.
const (
	mimeOctet = "application/octet-stream"
	mimeMPEG  = "audio/mpeg"
	mimeAAC   = "audio/aac"
	mimeFLAC  = "audio/flac"
)

// signature is a magic number at the start of the content. When refine is
// set, the magic only says where to look: refine decides, and may say no
// (ok false), in which case Sniff goes on down the table.
type signature struct {
	magic  string
	mime   string
	kind   Kind
	refine func(head []byte) (mime string, kind Kind, ok bool)
}

// signatures, tried in order. ISO base media files (MP4, MOV, 3GP, M4A,
// HEIC, AVIF), whose magic is at offset 4, and raw MPEG audio frames, which
// have no magic, are handled after the table.
var signatures = [...]signature{
	{magic: "\xFF\xD8\xFF", mime: "image/jpeg", kind: KindImage},
	{magic: "\x89PNG\r\n\x1A\n", mime: "image/png", kind: KindImage},
	{magic: "GIF87a", mime: "image/gif", kind: KindImage},
	{magic: "GIF89a", mime: "image/gif", kind: KindImage},
	{magic: "RIFF", refine: sniffRIFF},
	{magic: "\x1A\x45\xDF\xA3", refine: sniffEBML},
	{magic: "OggS\x00", refine: sniffOgg},
	{magic: "fLaC", mime: mimeFLAC, kind: KindAudio},
	{magic: "ID3", refine: sniffID3},
	{magic: "#!AMR\n", mime: "audio/amr", kind: KindAudio},
	{magic: "#!AMR-WB\n", mime: "audio/amr-wb", kind: KindAudio},
	{magic: "%PDF-", mime: "application/pdf", kind: KindFile},
	// ZIP: local file header, empty archive, spanned archive. DOCX, XLSX,
	// APK, JAR and EPUB are ZIP files too; telling them apart means
	// reading the archive's directory, so they are all application/zip.
	{magic: "PK\x03\x04", mime: "application/zip", kind: KindFile},
	{magic: "PK\x05\x06", mime: "application/zip", kind: KindFile},
	{magic: "PK\x07\x08", mime: "application/zip", kind: KindFile},
}

// Sniff tells what the content is from its first bytes (at least SniffLen
// of them when there are that many): the MIME type to store and serve it
// as, and its Kind. It never trusts a name or a client's claim, only the
// bytes.
//
// Recognised: JPEG, PNG, GIF, WebP, HEIC/HEIF and AVIF (images); MP4, M4V,
// QuickTime, 3GPP, WebM, Matroska, AVI and Ogg Theora (video); MP3, AAC
// (ADTS), M4A, Ogg (Opus, Vorbis), WAV, FLAC and AMR (audio); PDF, ZIP,
// and plain text (files). Anything else is application/octet-stream,
// KindFile. Sniff does not guess: a ZIP is application/zip whatever
// document it holds, HTML and XML are application/octet-stream (they are
// only ever downloaded), and a container whose brand it does not know is
// application/octet-stream. ISO base media and Matroska files are judged
// by their brand and doctype, so an audio-only MP4 or MKA is a video.
//
// Sniff does not allocate and is safe for concurrent use.
func Sniff(head []byte) (mime string, kind Kind) {
	if len(head) == 0 {
		return mimeOctet, KindFile
	}
	for i := range signatures {
		s := &signatures[i]
		if !hasPrefix(head, s.magic) {
			continue
		}
		if s.refine == nil {
			return s.mime, s.kind
		}
		if m, k, ok := s.refine(head); ok {
			return m, k
		}
	}
	if m, k, ok := sniffFtyp(head); ok {
		return m, k
	}
	if m, ok := sniffFrames(head); ok {
		return m, KindAudio
	}
	// DetectContentType knows text from binary, but calls any text
	// UTF-8 without looking: text that is not UTF-8 is not guessed at.
	switch m := http.DetectContentType(head); m {
	case "text/plain; charset=utf-8":
		if validUTF8Head(head) {
			return m, KindFile
		}
	case "text/plain; charset=utf-16be", "text/plain; charset=utf-16le":
		return m, KindFile
	}
	return mimeOctet, KindFile
}

// validUTF8Head reports whether the first SniffLen bytes of b are UTF-8,
// allowing a rune cut off at the end if b was cut there.
func validUTF8Head(b []byte) bool {
	if len(b) > SniffLen {
		b = b[:SniffLen]
	}
	if utf8.Valid(b) {
		return true
	}
	if len(b) < SniffLen {
		return false
	}
	for i := 1; i <= 3; i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			return !utf8.FullRune(b[len(b)-i:]) && utf8.Valid(b[:len(b)-i])
		}
	}
	return false
}

func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}

// sniffRIFF: RIFF <size> WEBP | WAVE | AVI .
func sniffRIFF(head []byte) (string, Kind, bool) {
	if len(head) < 12 {
		return "", 0, false
	}
	switch string(head[8:12]) {
	case "WEBP":
		return "image/webp", KindImage, true
	case "WAVE":
		return "audio/wav", KindAudio, true
	case "AVI ":
		return "video/x-msvideo", KindVideo, true
	}
	return "", 0, false
}

// brand maps an ISO base media brand (ftyp) to a type. A brand of three
// characters matches any fourth one.
type brand struct {
	brand string
	mime  string
	kind  Kind
}

// brands, by major brand. mif1 and msf1 (generic HEIF) come last, so that
// a compatible brand naming HEIC or AVIF wins over them.
var brands = [...]brand{
	{"heic", "image/heic", KindImage},
	{"heix", "image/heic", KindImage},
	{"heim", "image/heic", KindImage},
	{"heis", "image/heic", KindImage},
	{"hevc", "image/heic-sequence", KindImage},
	{"hevx", "image/heic-sequence", KindImage},
	{"avif", "image/avif", KindImage},
	{"avis", "image/avif", KindImage},
	{"M4A ", "audio/mp4", KindAudio},
	{"M4B ", "audio/mp4", KindAudio},
	{"M4V ", "video/x-m4v", KindVideo},
	{"M4VH", "video/x-m4v", KindVideo},
	{"M4VP", "video/x-m4v", KindVideo},
	{"qt  ", "video/quicktime", KindVideo},
	{"3g2", "video/3gpp2", KindVideo},
	{"3gp", "video/3gpp", KindVideo},
	{"3gs", "video/3gpp", KindVideo},
	{"3ge", "video/3gpp", KindVideo},
	{"3gg", "video/3gpp", KindVideo},
	{"isom", "video/mp4", KindVideo},
	{"iso2", "video/mp4", KindVideo},
	{"iso3", "video/mp4", KindVideo},
	{"iso4", "video/mp4", KindVideo},
	{"iso5", "video/mp4", KindVideo},
	{"iso6", "video/mp4", KindVideo},
	{"mp41", "video/mp4", KindVideo},
	{"mp42", "video/mp4", KindVideo},
	{"mp71", "video/mp4", KindVideo},
	{"avc1", "video/mp4", KindVideo},
	{"dash", "video/mp4", KindVideo},
	{"mmp4", "video/mp4", KindVideo},
	{"MSNV", "video/mp4", KindVideo},
	{"mif1", "image/heif", KindImage},
	{"msf1", "image/heif-sequence", KindImage},
}

// nGenericBrands is how many brands at the end of the table only say
// "some HEIF": a compatible brand that says more is preferred.
const nGenericBrands = 2

func lookupBrand(b []byte) int {
	for i := range brands {
		p := brands[i].brand
		if len(p) == 4 && string(b) == p || len(p) == 3 && string(b[:3]) == p {
			return i
		}
	}
	return -1
}

// sniffFtyp reads an ISO base media file type box: <size> "ftyp" <major
// brand> <minor version> <compatible brands>... The major brand decides;
// if it is unknown or generic HEIF, the first compatible brand that says
// more does.
func sniffFtyp(head []byte) (string, Kind, bool) {
	if len(head) < 12 || string(head[4:8]) != "ftyp" {
		return "", 0, false
	}
	size := int(binary.BigEndian.Uint32(head))
	if size < 16 {
		return "", 0, false
	}
	best := lookupBrand(head[8:12])
	if best < 0 || best >= len(brands)-nGenericBrands {
		end := min(size, len(head))
		for off := 16; off+4 <= end; off += 4 {
			i := lookupBrand(head[off : off+4])
			if i >= 0 && (best < 0 || i < best) {
				best = i
				if best < len(brands)-nGenericBrands {
					break
				}
			}
		}
	}
	if best < 0 {
		return "", 0, false
	}
	return brands[best].mime, brands[best].kind, true
}

// sniffEBML reads the EBML header of a Matroska or WebM file for its
// DocType.
func sniffEBML(head []byte) (string, Kind, bool) {
	b := head[4:]
	size, n, ok := ebmlVint(b)
	if !ok {
		return "", 0, false
	}
	b = b[n:]
	if uint64(len(b)) > size {
		b = b[:size]
	}
	for len(b) > 0 {
		idLen := ebmlLen(b[0])
		if idLen == 0 || idLen > 4 || idLen > len(b) {
			break
		}
		id := b[:idLen]
		b = b[idLen:]
		size, n, ok := ebmlVint(b)
		if !ok || size > uint64(len(b)-n) {
			break
		}
		data := b[n : n+int(size)]
		b = b[n+int(size):]
		if string(id) != "\x42\x82" { // DocType
			continue
		}
		switch string(data) {
		case "webm":
			return "video/webm", KindVideo, true
		case "matroska":
			return "video/x-matroska", KindVideo, true
		}
		break
	}
	return "", 0, false
}

// ebmlLen is the length of an EBML variable-size integer from its first
// byte: one plus its leading zero bits (0 for a zero byte: invalid).
func ebmlLen(b byte) int {
	for n := 1; n <= 8; n++ {
		if b&(0x80>>(n-1)) != 0 {
			return n
		}
	}
	return 0
}

func ebmlVint(b []byte) (v uint64, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	n = ebmlLen(b[0])
	if n == 0 || n > len(b) {
		return 0, 0, false
	}
	v = uint64(b[0]) & (0xFF >> n)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n, true
}

// sniffOgg looks at the first packet of an Ogg stream: its codec's header.
// Page header: "OggS", version, flags, granule(8), serial(4), sequence(4),
// CRC(4), segment count, segment table; then the packet.
func sniffOgg(head []byte) (string, Kind, bool) {
	if len(head) < 27 {
		return "audio/ogg", KindAudio, true
	}
	p := 27 + int(head[26])
	if p > len(head) {
		return "audio/ogg", KindAudio, true
	}
	pkt := head[p:]
	switch {
	case hasPrefix(pkt, "OpusHead"):
		return "audio/ogg; codecs=opus", KindAudio, true
	case hasPrefix(pkt, "\x01vorbis"):
		return "audio/ogg; codecs=vorbis", KindAudio, true
	case hasPrefix(pkt, "\x80theora"):
		return "video/ogg", KindVideo, true
	}
	return "audio/ogg", KindAudio, true
}

// sniffID3 skips an ID3v2 tag: what follows is MP3 unless it is FLAC or
// ADTS AAC (both sometimes carry an ID3 tag).
func sniffID3(head []byte) (string, Kind, bool) {
	if len(head) < 10 {
		return mimeMPEG, KindAudio, true
	}
	size := 0
	for _, c := range head[6:10] {
		if c >= 0x80 { // not syncsafe
			return mimeMPEG, KindAudio, true
		}
		size = size<<7 | int(c)
	}
	end := 10 + size
	if head[5]&0x10 != 0 { // footer
		end += 10
	}
	if end < len(head) {
		rest := head[end:]
		if hasPrefix(rest, "fLaC") {
			return mimeFLAC, KindAudio, true
		}
		if _, ok := adtsFrameLen(rest); ok {
			return mimeAAC, KindAudio, true
		}
	}
	return mimeMPEG, KindAudio, true
}

// sniffFrames recognises a raw stream of ADTS AAC or MPEG audio (MP3)
// frames by its sync word and a valid header, followed by a second valid
// header. Only a head of at least SniffLen bytes that ends before the
// second frame is taken on the first header alone.
func sniffFrames(head []byte) (string, bool) {
	if hasPrefix(head, "\xFF\xFE") { // UTF-16LE byte order mark, not MPEG layer I
		return "", false
	}
	if n, ok := adtsFrameLen(head); ok {
		if n+7 > len(head) {
			return mimeAAC, len(head) >= SniffLen
		}
		if _, ok := adtsFrameLen(head[n:]); ok {
			return mimeAAC, true
		}
		return "", false
	}
	if n, ok := mpegFrameLen(head); ok {
		if n+4 > len(head) {
			return mimeMPEG, len(head) >= SniffLen
		}
		// The same version and layer follow.
		if _, ok := mpegFrameLen(head[n:]); ok && head[n+1]&0xFE == head[1]&0xFE {
			return mimeMPEG, true
		}
	}
	return "", false
}

// adtsFrameLen checks an ADTS header (12-bit sync, layer 0) and returns the
// frame's length.
func adtsFrameLen(h []byte) (int, bool) {
	if len(h) < 7 || h[0] != 0xFF || h[1]&0xF6 != 0xF0 {
		return 0, false
	}
	if (h[2]>>2)&0x0F > 12 { // sampling frequency index
		return 0, false
	}
	n := int(h[3]&0x03)<<11 | int(h[4])<<3 | int(h[5])>>5
	hdr := 7
	if h[1]&0x01 == 0 { // CRC present
		hdr = 9
	}
	if n <= hdr {
		return 0, false
	}
	return n, true
}

// MPEG audio bitrates in kbit/s by [MPEG-1?][layer-1][index].
var mpegBitrates = [2][3][15]uint16{
	{ // MPEG-2, 2.5
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
	},
	{ // MPEG-1
		{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448},
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384},
		{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320},
	},
}

// MPEG audio sample rates by [version bits][index]; version 1 is reserved.
var mpegRates = [4][3]int{
	{11025, 12000, 8000},  // MPEG-2.5
	{},                    // reserved
	{22050, 24000, 16000}, // MPEG-2
	{44100, 48000, 32000}, // MPEG-1
}

// mpegFrameLen checks an MPEG audio frame header (11-bit sync) and returns
// the frame's length. Free-format frames (bitrate index 0) are not
// recognised.
func mpegFrameLen(h []byte) (int, bool) {
	if len(h) < 4 || h[0] != 0xFF || h[1]&0xE0 != 0xE0 {
		return 0, false
	}
	version := (h[1] >> 3) & 3
	layerBits := (h[1] >> 1) & 3 // 3: layer I, 2: II, 1: III
	bitrate := h[2] >> 4
	rate := (h[2] >> 2) & 3
	if version == 1 || layerBits == 0 || bitrate == 0 || bitrate == 15 || rate == 3 {
		return 0, false
	}
	layer := 4 - int(layerBits)
	mpeg1 := 0
	if version == 3 {
		mpeg1 = 1
	}
	br := int(mpegBitrates[mpeg1][layer-1][bitrate]) * 1000
	sr := mpegRates[version][rate]
	pad := int(h[2]>>1) & 1
	switch {
	case layer == 1:
		return (12*br/sr + pad) * 4, true
	case layer == 3 && mpeg1 == 0:
		return 72*br/sr + pad, true
	default:
		return 144*br/sr + pad, true
	}
}

// ErrTypeMismatch: the client said the upload is an image or a video, and
// its bytes are not one (CheckClaim).
var ErrTypeMismatch = errors.New("assets: content does not match the claimed type")

// CheckClaim applies the product's rule to a client's claimed MIME type
// for an upload whose bytes Sniff found to be sniffed, of kind kind.
//
// The stored and served type always comes from the bytes (sniffed); the
// claim never replaces it. A claim matters only when it promises media
// that the recipient's app will decode and show inline: if the claim is
// image/* (video/*), the bytes must be an image (a video), or the upload
// is refused with ErrTypeMismatch; a "photo" that is really a PDF, or a
// "video" that is an executable, never reaches anyone. Within the kind the
// subtype may differ (a claimed image/jpeg that is a PNG is accepted, and
// stored as image/png): clients mislabel, and nothing is decoded by the
// label. Every other claim, or none (""), is ignored: a photo sent as a
// document, with application/octet-stream or application/pdf claimed, is
// accepted and stored as the photo it is. Parameters (";...") and letter
// case in the claim do not matter.
//
// CheckClaim does not allocate unless it returns an error.
func CheckClaim(claimedMime string, sniffed string, kind Kind) error {
	claimed := mimeKind(claimedMime)
	if (claimed != KindImage && claimed != KindVideo) || claimed == kind {
		return nil
	}
	if len(claimedMime) > 64 {
		claimedMime = claimedMime[:64] + "…"
	}
	return fmt.Errorf("%w: claimed %q, content is %s (%s)", ErrTypeMismatch, claimedMime, sniffed, kind)
}

// mimeKind is the kind a MIME type names by its top-level type.
func mimeKind(mime string) Kind {
	mime = strings.TrimSpace(mime)
	i := strings.IndexByte(mime, '/')
	if i < 0 {
		return KindFile
	}
	switch top := mime[:i]; {
	case strings.EqualFold(top, "image"):
		return KindImage
	case strings.EqualFold(top, "video"):
		return KindVideo
	case strings.EqualFold(top, "audio"):
		return KindAudio
	}
	return KindFile
}

// Disposition is the Content-Disposition type to serve an asset of kind
// k with: "inline" for images, video and audio, which the apps show and
// play; "attachment" for everything else, so that a browser downloads a
// file and never renders it (an uploaded HTML page or SVG must not run in
// the asset server's origin).
func Disposition(k Kind) string {
	switch k {
	case KindImage, KindVideo, KindAudio:
		return "inline"
	}
	return "attachment"
}
