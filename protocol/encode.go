package protocol

import (
	"strconv"
	"unicode/utf8"
)

// AppendAck appends {"type":"ack","id":…,"msg_id":…,"ts":…}. msgID may be
// empty for acks of frames that create no message (receipt, sync).
func AppendAck[S ~string | ~[]byte](dst []byte, id S, msgID string, ts int64) []byte {
	dst = append(dst, `{"type":"ack","id":`...)
	dst = AppendString(dst, id)
	if msgID != "" {
		dst = append(dst, `,"msg_id":`...)
		dst = AppendString(dst, msgID)
		dst = append(dst, `,"ts":`...)
		dst = strconv.AppendInt(dst, ts, 10)
	}
	return append(dst, '}')
}

// AppendMsg appends a msg frame.
func AppendMsg[S ~string | ~[]byte](dst []byte, seq uint64, msgID, from, to string, body S, ts int64) []byte {
	dst = AppendHead(dst, "msg", seq)
	return AppendMsgTail(dst, msgID, from, to, "", body, ts)
}

// AppendHead appends the start of an inbox frame, {"type":typ,"seq":seq,
// which a tail (AppendMsgTail, AppendGroupEventTail) completes. An inbox
// frame shared by many inboxes is stored and sent as one head per inbox and
// one tail for all.
func AppendHead(dst []byte, typ string, seq uint64) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","seq":`...)
	return strconv.AppendUint(dst, seq, 10)
}

// AppendMsgTail appends the rest of a msg frame after its head: msg_id,
// from, to, group (when not empty), body and ts.
func AppendMsgTail[S ~string | ~[]byte](dst []byte, msgID, from, to, group string, body S, ts int64) []byte {
	return AppendMsgTailWith(dst, msgID, from, to, group, body, nil, ts)
}

// AppendMsgTailWith is AppendMsgTail with an attachment: a JSON object
// the caller encoded, added as "attachment" when not empty.
func AppendMsgTailWith[S ~string | ~[]byte](dst []byte, msgID, from, to, group string, body S, attachment []byte, ts int64) []byte {
	dst = append(dst, `,"msg_id":`...)
	dst = AppendString(dst, msgID)
	dst = append(dst, `,"from":`...)
	dst = AppendString(dst, from)
	dst = append(dst, `,"to":`...)
	dst = AppendString(dst, to)
	if group != "" {
		dst = append(dst, `,"group":`...)
		dst = AppendString(dst, group)
	}
	dst = append(dst, `,"body":`...)
	dst = AppendString(dst, body)
	if len(attachment) > 0 {
		dst = append(dst, `,"attachment":`...)
		dst = append(dst, attachment...)
	}
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, '}')
}

// AppendGroupEventTail appends the rest of a group frame (a membership
// change) after its head: group, event, by, members (when any), name (when
// not empty) and ts.
//
// A "renamed" or "created" event carries the group's name; an "icon" event
// its icon, an asset id ("" once removed).
func AppendGroupEventTail(dst []byte, group, event, by string, members []string, name, icon string, ts int64) []byte {
	dst = append(dst, `,"group":`...)
	dst = AppendString(dst, group)
	dst = append(dst, `,"event":`...)
	dst = AppendString(dst, event)
	dst = append(dst, `,"by":`...)
	dst = AppendString(dst, by)
	if len(members) > 0 {
		dst = append(dst, `,"members":`...)
		dst = AppendStrings(dst, members)
	}
	if name != "" {
		dst = append(dst, `,"name":`...)
		dst = AppendString(dst, name)
	}
	if event == "icon" {
		dst = append(dst, `,"icon":`...)
		dst = AppendString(dst, icon)
	}
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, '}')
}

// AppendGroupReceipt appends the receipt frame that tells a sender that
// every member of group has msgIDs at status: {"type":"receipt","seq":…,
// "status":…,"msg_ids":[…],"group":…,"all":true,"ts":…}.
func AppendGroupReceipt(dst []byte, seq uint64, status string, msgIDs []string, group string, ts int64) []byte {
	dst = AppendHead(dst, "receipt", seq)
	dst = append(dst, `,"status":`...)
	dst = AppendString(dst, status)
	dst = append(dst, `,"msg_ids":`...)
	dst = AppendStrings(dst, msgIDs)
	dst = append(dst, `,"group":`...)
	dst = AppendString(dst, group)
	dst = append(dst, `,"all":true,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, '}')
}

// AppendTyping appends {"type":"typing","from":…} with "to" or "group"
// (whichever is not empty) and "stop":true when stop.
func AppendTyping(dst []byte, from, to, group string, stop bool) []byte {
	dst = append(dst, `{"type":"typing","from":`...)
	dst = AppendString(dst, from)
	if group != "" {
		dst = append(dst, `,"group":`...)
		dst = AppendString(dst, group)
	} else {
		dst = append(dst, `,"to":`...)
		dst = AppendString(dst, to)
	}
	if stop {
		dst = append(dst, `,"stop":true`...)
	}
	return append(dst, '}')
}

// AppendAckFields appends {"type":"ack","id":…} with fields, a run of
// ,"key":value pairs (or nothing), inserted before the closing brace.
func AppendAckFields[S ~string | ~[]byte](dst []byte, id S, fields []byte) []byte {
	dst = append(dst, `{"type":"ack","id":`...)
	dst = AppendString(dst, id)
	dst = append(dst, fields...)
	return append(dst, '}')
}

// AppendStrings appends ss as a JSON array of strings.
func AppendStrings[S ~string | ~[]byte](dst []byte, ss []S) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, s)
	}
	return append(dst, ']')
}

// AppendReceipt appends a receipt frame for the sender of msgIDs.
func AppendReceipt(dst []byte, seq uint64, status string, msgIDs []string, by string, ts int64) []byte {
	dst = AppendHead(dst, "receipt", seq)
	dst = append(dst, `,"status":`...)
	dst = AppendString(dst, status)
	dst = append(dst, `,"msg_ids":`...)
	dst = AppendStrings(dst, msgIDs)
	dst = append(dst, `,"by":`...)
	dst = AppendString(dst, by)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, '}')
}

// AppendSynced appends {"type":"synced","seq":…} (with "id" when non-empty).
func AppendSynced[S ~string | ~[]byte](dst []byte, id S, seq uint64) []byte {
	dst = append(dst, `{"type":"synced"`...)
	if len(id) > 0 {
		dst = append(dst, `,"id":`...)
		dst = AppendString(dst, id)
	}
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, '}')
}

// AppendError appends an error frame; id is omitted when empty.
func AppendError[S ~string | ~[]byte](dst []byte, id S, code, message string) []byte {
	dst = append(dst, `{"type":"error"`...)
	if len(id) > 0 {
		dst = append(dst, `,"id":`...)
		dst = AppendString(dst, id)
	}
	dst = append(dst, `,"code":`...)
	dst = AppendString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = AppendString(dst, message)
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 is replaced by
// U+FFFD so that the output is always valid JSON in a valid text frame.
func AppendString[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// decodeRune is utf8.DecodeRune for either string or []byte without
// converting (a conversion would allocate on the hot path).
func decodeRune[S ~string | ~[]byte](s S) (rune, int) {
	n := len(s)
	c0 := s[0]
	var need int
	var min rune
	var r rune
	switch {
	case c0 < 0x80:
		return rune(c0), 1
	case c0&0xE0 == 0xC0:
		need, min, r = 2, 0x80, rune(c0&0x1F)
	case c0&0xF0 == 0xE0:
		need, min, r = 3, 0x800, rune(c0&0x0F)
	case c0&0xF8 == 0xF0:
		need, min, r = 4, 0x10000, rune(c0&0x07)
	default:
		return utf8.RuneError, 1
	}
	if n < need {
		return utf8.RuneError, 1
	}
	for k := 1; k < need; k++ {
		c := s[k]
		if c&0xC0 != 0x80 {
			return utf8.RuneError, 1
		}
		r = r<<6 | rune(c&0x3F)
	}
	if r < min || r > utf8.MaxRune || (0xD800 <= r && r <= 0xDFFF) {
		return utf8.RuneError, 1
	}
	return r, need
}
