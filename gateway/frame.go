package gateway

import (
	"encoding/binary"
	"unicode/utf8"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Close codes the gateway sends. docs/protocol.md documents each.
const (
	CloseNormal         = 1000
	CloseGoingAway      = 1001 // server shutting down
	CloseProtocolError  = 1002
	CloseUnsupported    = 1003 // binary frames
	CloseInvalidPayload = 1007 // text that is not UTF-8
	ClosePolicy         = 1008 // rate limit flood
	CloseTooBig         = 1009
	CloseInternal       = 1011
	CloseRestart        = 1012
	CloseTryAgain       = 1013 // the server is overloaded: reconnect later
	CloseSlowConsumer   = 4000 // outbound queue over its bound
	CloseIdle           = 4001 // silent past the idle timeout
	CloseTooManyDevices = 4002 // the user has max_devices other devices connected
	CloseReplaced       = 4003 // a newer connection of the same device replaced this one
)

// header is a parsed frame header.
type header struct {
	fin    bool
	rsv    byte // the three RSV bits, in place (0x70)
	op     byte
	masked bool
	length uint64
	mask   [4]byte
	size   int // bytes the header occupies
}

// closeErr is a reason to fail a connection: a close code and a short
// reason for the close frame. Values are preallocated.
type closeErr struct {
	code   uint16
	reason string
}

var (
	errRSV            = &closeErr{CloseProtocolError, "RSV bits set without an extension"}
	errUnmasked       = &closeErr{CloseProtocolError, "client frames must be masked"}
	errReservedOp     = &closeErr{CloseProtocolError, "reserved opcode"}
	errControlLen     = &closeErr{CloseProtocolError, "control frame payload over 125 bytes"}
	errControlFrag    = &closeErr{CloseProtocolError, "fragmented control frame"}
	errLength64       = &closeErr{CloseProtocolError, "frame length has its top bit set"}
	errContinuation   = &closeErr{CloseProtocolError, "continuation frame without a message to continue"}
	errNotContinued   = &closeErr{CloseProtocolError, "new data frame inside a fragmented message"}
	errCloseLen       = &closeErr{CloseProtocolError, "close frame payload of 1 byte"}
	errCloseCode      = &closeErr{CloseProtocolError, "invalid close code"}
	errCloseReason    = &closeErr{CloseInvalidPayload, "close reason is not UTF-8"}
	errBinary         = &closeErr{CloseUnsupported, "binary frames are not supported: send JSON in text frames"}
	errInvalidUTF8    = &closeErr{CloseInvalidPayload, "text message is not valid UTF-8"}
	errFrameTooBig    = &closeErr{CloseTooBig, "frame exceeds max_frame_bytes"}
	errMessageTooBig  = &closeErr{CloseTooBig, "message exceeds max_message_bytes"}
	errTooManyFrags   = &closeErr{CloseTooBig, "message exceeds max_fragments"}
	errRateFlood      = &closeErr{ClosePolicy, "message rate limit exceeded"}
	errSlowConsumer   = &closeErr{CloseSlowConsumer, "slow consumer: outbound queue full; reconnect and sync"}
	errIdle           = &closeErr{CloseIdle, "idle timeout"}
	errGoingAway      = &closeErr{CloseGoingAway, "server shutting down"}
	errInternal       = &closeErr{CloseInternal, "internal error: reconnect"}
	errTryAgain       = &closeErr{CloseTryAgain, "server overloaded: reconnect later"}
	errTooManyDevices = &closeErr{CloseTooManyDevices, "too many devices connected: close one first"}
	errReplaced       = &closeErr{CloseReplaced, "replaced by a newer connection of this device"}
)

// parseHeader parses the frame header at the start of b. It returns
// ok=false when b is too short to hold the whole header. It checks what can
// be checked on the header alone: RSV bits, masking, reserved opcodes and
// the rules for control frames. maxPayload bounds the declared length.
func parseHeader(b []byte, maxPayload uint64) (h header, ok bool, err *closeErr) {
	if len(b) < 2 {
		return h, false, nil
	}
	h.fin = b[0]&0x80 != 0
	h.rsv = b[0] & 0x70
	h.op = b[0] & 0x0F
	h.masked = b[1]&0x80 != 0
	n := 2
	switch l := b[1] & 0x7F; l {
	case 126:
		n = 4
		if len(b) < n {
			return h, false, nil
		}
		h.length = uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		n = 10
		if len(b) < n {
			return h, false, nil
		}
		h.length = binary.BigEndian.Uint64(b[2:])
		if h.length>>63 != 0 {
			return h, true, errLength64
		}
	default:
		h.length = uint64(l)
	}
	switch {
	case h.rsv != 0:
		return h, true, errRSV
	case !h.masked:
		return h, true, errUnmasked
	case h.op > opBinary && h.op < opClose, h.op > opPong:
		return h, true, errReservedOp
	case h.op >= opClose && h.length > 125:
		return h, true, errControlLen
	case h.op >= opClose && !h.fin:
		return h, true, errControlFrag
	case h.length > maxPayload:
		return h, true, errFrameTooBig
	}
	if len(b) < n+4 {
		return h, false, nil
	}
	copy(h.mask[:], b[n:n+4])
	h.size = n + 4
	return h, true, nil
}

// appendHeader appends the header of an unmasked, final server frame.
func appendHeader(dst []byte, op byte, length int) []byte {
	dst = append(dst, 0x80|op)
	switch {
	case length < 126:
		return append(dst, byte(length))
	case length <= 0xFFFF:
		return append(dst, 126, byte(length>>8), byte(length))
	default:
		dst = append(dst, 127)
		return binary.BigEndian.AppendUint64(dst, uint64(length))
	}
}

// headerLen is the size of a server frame header for a payload of n bytes.
func headerLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xFFFF:
		return 4
	}
	return 10
}

// appendClose appends a close frame with code and reason.
func appendClose(dst []byte, code uint16, reason string) []byte {
	if code == 0 {
		return appendHeader(dst, opClose, 0)
	}
	if len(reason) > 123 {
		reason = reason[:123]
	}
	dst = appendHeader(dst, opClose, 2+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, code)
	return append(dst, reason...)
}

// checkClosePayload validates a close frame's payload (RFC 6455 §5.5.1,
// §7.4) and returns the code to echo (0 for an empty payload).
func checkClosePayload(p []byte) (uint16, *closeErr) {
	switch {
	case len(p) == 0:
		return 0, nil
	case len(p) == 1:
		return 0, errCloseLen
	}
	code := binary.BigEndian.Uint16(p)
	if !validCloseCode(code) {
		return 0, errCloseCode
	}
	if !utf8.Valid(p[2:]) {
		return 0, errCloseReason
	}
	return code, nil
}

// validCloseCode reports whether a peer may send code in a close frame.
func validCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
