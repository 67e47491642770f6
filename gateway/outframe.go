package gateway

import (
	"sync"
	"sync/atomic"
)

// maxHeader is the largest server frame header: room reserved in front of
// a payload encoded in place, so the header can be written before it
// without copying.
const maxHeader = 10

// outFrame is an encoded server frame (header and payload) shared by every
// connection it goes to. It is reference counted and pooled by size class:
// encoded once per fan-out, freed when the last loop has written it.
type outFrame struct {
	buf   []byte // buf[off:] is the frame
	off   int
	refs  atomic.Int32
	class int8
}

// Size classes of pooled frames; larger frames are allocated and dropped.
var frameClasses = [...]int{256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10}

var framePools [len(frameClasses)]sync.Pool

// getFrame returns a frame with one reference and room for n bytes after
// the reserved header space.
func getFrame(n int) *outFrame {
	n += maxHeader
	for i, size := range frameClasses {
		if n <= size {
			f, _ := framePools[i].Get().(*outFrame)
			if f == nil {
				f = &outFrame{buf: make([]byte, 0, size), class: int8(i)}
			}
			f.refs.Store(1)
			return f
		}
	}
	f := &outFrame{buf: make([]byte, 0, n), class: -1}
	f.refs.Store(1)
	return f
}

// payload returns the buffer to append a payload to; pass the result to seal.
func (f *outFrame) payload() []byte { return f.buf[:maxHeader] }

// seal writes the header of an op frame in front of p[maxHeader:], the
// payload appended to what payload returned.
func (f *outFrame) seal(op byte, p []byte) *outFrame {
	n := len(p) - maxHeader
	f.off = maxHeader - headerLen(n)
	appendHeader(p[f.off:f.off], op, n)
	f.buf = p
	return f
}

// bytes returns the encoded frame.
func (f *outFrame) bytes() []byte { return f.buf[f.off:] }

func (f *outFrame) retain() *outFrame {
	f.refs.Add(1)
	return f
}

func (f *outFrame) release() {
	if f.refs.Add(-1) != 0 {
		return
	}
	if f.class < 0 || cap(f.buf) > 4*frameClasses[f.class] {
		return // not pooled, or grew far past its class: let the GC have it
	}
	f.buf = f.buf[:0]
	framePools[f.class].Put(f)
}

// releaseIf releases f unless it is nil.
func (f *outFrame) releaseIf() {
	if f != nil {
		f.release()
	}
}

// headFrame returns the start of a text frame whose payload is head
// followed by tailLen more bytes, sent from a shared tail frame (tailFrame).
func headFrame(head []byte, tailLen int) *outFrame {
	f := getFrame(len(head))
	p := append(f.payload(), head...)
	f.off = maxHeader - headerLen(len(head)+tailLen)
	appendHeader(p[f.off:f.off], opText, len(head)+tailLen)
	f.buf = p
	return f
}

// tailFrame returns a copy of b with no header: the shared tail of frames
// started by headFrame.
func tailFrame(b []byte) *outFrame {
	f := getFrame(len(b))
	f.buf = append(f.payload(), b...)
	f.off = maxHeader
	return f
}

// textFrame returns a text frame carrying a copy of payload.
func textFrame(payload []byte) *outFrame {
	f := getFrame(len(payload))
	return f.seal(opText, append(f.payload(), payload...))
}
