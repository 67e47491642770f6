package protocol

import "strconv"

// AppendPresence appends a presence frame:
//
//	{"type":"presence","user":"bob","online":true,"last_seen":1764170000123}
//
// "online" is written only when hasOnline and "last_seen" (unix
// milliseconds) only when hasLastSeen: a part the recipient may not see is
// left out, never sent as null or false. It does not allocate when dst has
// room.
func AppendPresence(dst []byte, user string, online, hasOnline bool, lastSeen int64, hasLastSeen bool) []byte {
	dst = append(dst, `{"type":"presence","user":`...)
	dst = AppendString(dst, user)
	if hasOnline {
		dst = append(dst, `,"online":`...)
		dst = strconv.AppendBool(dst, online)
	}
	if hasLastSeen {
		dst = append(dst, `,"last_seen":`...)
		dst = strconv.AppendInt(dst, lastSeen, 10)
	}
	return append(dst, '}')
}
