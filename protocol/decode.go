package protocol

import (
	"unicode/utf16"
	"unicode/utf8"
)

// Type is the kind of a client frame.
type Type uint8

// Client frame types.
const (
	TypeUnknown Type = iota // a "type" the server does not know
	TypeSend                // "send"
	TypeReceipt             // "receipt"
	TypeSync                // "sync"

	TypeGroupCreate    // "group.create"
	TypeGroupAdd       // "group.add"
	TypeGroupRemove    // "group.remove"
	TypeGroupLeave     // "group.leave"
	TypeGroupPromote   // "group.promote"
	TypeGroupDemote    // "group.demote"
	TypeGroupRename    // "group.rename"
	TypeGroupInfo      // "group.info"
	TypeGroupList      // "group.list"
	TypeMsgInfo        // "msg.info"
	TypePresenceSub    // "presence.sub"
	TypePresenceUnsub  // "presence.unsub"
	TypeActive         // "active"
	TypeInactive       // "inactive"
	TypeTyping         // "typing"
	TypePrivacySet     // "privacy.set"
	TypePrivacyGet     // "privacy.get"
	TypeContactsAdd    // "contacts.add"
	TypeContactsRemove // "contacts.remove"
	TypeContactsList   // "contacts.list"
	TypeDevicesList    // "devices.list"
	TypeProfileSet     // "profile.set"
	TypeProfileGet     // "profile.get"
	TypeGroupIcon      // "group.icon"
)

// types maps wire names to types.
var types = map[string]Type{
	"send": TypeSend, "receipt": TypeReceipt, "sync": TypeSync,
	"group.create": TypeGroupCreate, "group.add": TypeGroupAdd, "group.remove": TypeGroupRemove,
	"group.leave": TypeGroupLeave, "group.promote": TypeGroupPromote, "group.demote": TypeGroupDemote,
	"group.rename": TypeGroupRename, "group.info": TypeGroupInfo, "group.list": TypeGroupList,
	"msg.info": TypeMsgInfo, "presence.sub": TypePresenceSub, "presence.unsub": TypePresenceUnsub,
	"active": TypeActive, "inactive": TypeInactive, "typing": TypeTyping,
	"privacy.set": TypePrivacySet, "privacy.get": TypePrivacyGet,
	"contacts.add": TypeContactsAdd, "contacts.remove": TypeContactsRemove, "contacts.list": TypeContactsList,
	"devices.list": TypeDevicesList, "group.icon": TypeGroupIcon,
	"profile.set": TypeProfileSet, "profile.get": TypeProfileGet,
}

// Limits of the decoder. Frames beyond them are refused with bad_request.
const (
	// MaxMsgIDs is the most msg_ids one receipt frame may carry.
	MaxMsgIDs = 256
	// MaxUsers is the most entries one "members" or "users" list may carry.
	MaxUsers = 1024
	// MaxDepth is the deepest nesting of unknown fields that is skipped.
	MaxDepth = 32
)

// Request is a decoded client frame. Its byte slices alias the decoded
// input or the Decoder's scratch space and are valid until the next Decode.
type Request struct {
	Type     Type
	TypeName []byte // the "type" value as sent, for error messages
	ID       []byte
	To       []byte
	Body     []byte
	Status   []byte
	MsgIDs   [][]byte
	After    uint64
	Group    []byte
	Name     []byte // group.create, group.rename, profile.set
	Members  [][]byte
	Users    [][]byte // presence.*, contacts.*, profile.get
	MsgID    []byte
	LastSeen []byte // privacy.set
	Online   []byte // privacy.set
	Stop     bool   // typing
	AssetID  []byte // send: "attachment":{"asset_id":…}
	About    []byte // profile.set
	Photo    []byte // profile.set: an asset id, or "" to remove the photo
	Icon     []byte // group.icon: an asset id, or "" to remove the icon

	HasType, HasID, HasTo, HasBody, HasStatus, HasMsgIDs, HasAfter            bool
	HasGroup, HasName, HasMembers, HasUsers, HasMsgID, HasLastSeen, HasOnline bool
	HasAttachment, HasAbout, HasPhoto, HasIcon                                bool
}

func (r *Request) reset() {
	ids, members, users := r.MsgIDs[:0], r.Members[:0], r.Users[:0]
	*r = Request{MsgIDs: ids, Members: members, Users: users}
}

// Decoder decodes client frames. The zero value is ready to use.
type Decoder struct {
	scratch []byte
	ids     [MaxMsgIDs][]byte
	members [MaxUsers][]byte
	users   [MaxUsers][]byte
}

// Decode parses one client frame into r. data must be valid UTF-8 (the
// gateway checks text frames before decoding). On error r is partly filled
// and the returned *Error says what was wrong, as the error frame will.
func (d *Decoder) Decode(data []byte, r *Request) *Error {
	r.reset()
	d.scratch = d.scratch[:0]
	if r.MsgIDs == nil {
		r.MsgIDs = d.ids[:0:MaxMsgIDs]
		r.Members = d.members[:0:MaxUsers]
		r.Users = d.users[:0:MaxUsers]
	}
	p := parser{data: data, d: d}
	p.ws()
	if !p.consume('{') {
		return errNotObject
	}
	p.ws()
	if p.consume('}') {
		return p.finish()
	}
	for {
		p.ws()
		key, ok := p.str()
		if !ok {
			return p.fail()
		}
		p.ws()
		if !p.consume(':') {
			return errSyntax
		}
		p.ws()
		if e := p.field(key, r); e != nil {
			return e
		}
		p.ws()
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			return p.finish()
		}
		return errSyntax
	}
}

type parser struct {
	data []byte
	pos  int
	d    *Decoder
	bad  *Error // set by str/skip on a specific failure
}

func (p *parser) finish() *Error {
	p.ws()
	if p.pos != len(p.data) {
		return errTrailing
	}
	return nil
}

func (p *parser) fail() *Error {
	if p.bad != nil {
		return p.bad
	}
	return errSyntax
}

func (p *parser) ws() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) consume(c byte) bool {
	if p.pos < len(p.data) && p.data[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *parser) peek() byte {
	if p.pos < len(p.data) {
		return p.data[p.pos]
	}
	return 0
}

func (p *parser) field(key []byte, r *Request) *Error {
	if p.pos == len(p.data) {
		return errSyntax // the input ends where a value should start
	}
	switch string(key) { // no allocation: the compiler switches on the bytes
	case "type":
		v, e := p.strField(errTypeType)
		if e != nil {
			return e
		}
		r.TypeName, r.HasType = v, true
		r.Type = types[string(v)] // no allocation; TypeUnknown when absent
	case "id":
		return p.setStr(&r.ID, &r.HasID, errTypeID)
	case "to":
		return p.setStr(&r.To, &r.HasTo, errTypeTo)
	case "body":
		return p.setStr(&r.Body, &r.HasBody, errTypeBody)
	case "status":
		return p.setStr(&r.Status, &r.HasStatus, errTypeStatus)
	case "msg_ids":
		return p.setList(&r.MsgIDs, &r.HasMsgIDs, errTypeMsgIDs, errTooManyIDs)
	case "members":
		return p.setList(&r.Members, &r.HasMembers, errTypeMembers, errTooManyMembers)
	case "users":
		return p.setList(&r.Users, &r.HasUsers, errTypeUsers, errTooManyUsers)
	case "group":
		return p.setStr(&r.Group, &r.HasGroup, errTypeGroup)
	case "name":
		return p.setStr(&r.Name, &r.HasName, errTypeName)
	case "msg_id":
		return p.setStr(&r.MsgID, &r.HasMsgID, errTypeMsgID)
	case "last_seen":
		return p.setStr(&r.LastSeen, &r.HasLastSeen, errTypeLastSeen)
	case "online":
		return p.setStr(&r.Online, &r.HasOnline, errTypeOnline)
	case "about":
		return p.setStr(&r.About, &r.HasAbout, errTypeAbout)
	case "photo":
		return p.setStr(&r.Photo, &r.HasPhoto, errTypePhoto)
	case "icon":
		return p.setStr(&r.Icon, &r.HasIcon, errTypeIcon)
	case "attachment":
		return p.attachment(r)
	case "stop":
		switch {
		case p.literal("true"):
			r.Stop = true
		case p.literal("false"):
			r.Stop = false
		default:
			return errTypeStop
		}
	case "after":
		v, ok := p.uint()
		if !ok {
			return errTypeAfter
		}
		r.After, r.HasAfter = v, true
	default:
		if !p.skip(0) {
			return p.fail()
		}
	}
	return nil
}

// attachment parses the attachment object of a send. Only "asset_id" is
// read: everything else the server takes from the asset itself.
func (p *parser) attachment(r *Request) *Error {
	if !p.consume('{') {
		return errTypeAttachment
	}
	r.HasAttachment = true
	p.ws()
	if p.consume('}') {
		return nil
	}
	for {
		p.ws()
		key, ok := p.str()
		if !ok {
			return p.fail()
		}
		p.ws()
		if !p.consume(':') {
			return errSyntax
		}
		p.ws()
		if string(key) == "asset_id" {
			v, e := p.strField(errTypeAssetID)
			if e != nil {
				return e
			}
			r.AssetID = v
		} else if !p.skip(1) {
			return p.fail()
		}
		p.ws()
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			return nil
		}
		return errSyntax
	}
}

// setStr parses a string value into *dst and sets *has.
func (p *parser) setStr(dst *[]byte, has *bool, typeErr *Error) *Error {
	v, e := p.strField(typeErr)
	if e != nil {
		return e
	}
	*dst, *has = v, true
	return nil
}

// setList parses an array of strings into *dst (reusing its capacity,
// which is the list's limit) and sets *has.
func (p *parser) setList(dst *[][]byte, has *bool, typeErr, tooMany *Error) *Error {
	var e *Error
	*dst, e = p.strList((*dst)[:0], typeErr, tooMany)
	*has = true
	return e
}

// strList parses an array of strings into dst, which must have the
// capacity of the list's limit: one more entry is tooMany.
func (p *parser) strList(dst [][]byte, typeErr, tooMany *Error) ([][]byte, *Error) {
	if !p.consume('[') {
		return dst, typeErr
	}
	p.ws()
	if p.consume(']') {
		return dst, nil
	}
	for {
		p.ws()
		if p.peek() != '"' {
			return dst, typeErr
		}
		v, ok := p.str()
		if !ok {
			return dst, p.fail()
		}
		if len(dst) == cap(dst) {
			return dst, tooMany
		}
		dst = append(dst, v)
		p.ws()
		if p.consume(',') {
			continue
		}
		if p.consume(']') {
			return dst, nil
		}
		return dst, errSyntax
	}
}

// strField parses a string value, or returns typeErr if the value is not a
// string (null included).
func (p *parser) strField(typeErr *Error) ([]byte, *Error) {
	if p.peek() != '"' {
		return nil, typeErr
	}
	v, ok := p.str()
	if !ok {
		return nil, p.fail()
	}
	return v, nil
}

// str parses a JSON string at p.pos. Without escapes the result aliases the
// input; with escapes it is unescaped into the decoder's scratch.
func (p *parser) str() ([]byte, bool) {
	if !p.consume('"') {
		return nil, false
	}
	start := p.pos
	for i := start; i < len(p.data); i++ {
		c := p.data[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return p.data[start:i], true
		case c == '\\':
			return p.strEscaped(start, i)
		case c < 0x20:
			p.bad = errControlChar
			return nil, false
		}
	}
	p.bad = errSyntax
	return nil, false
}

func (p *parser) strEscaped(start, i int) ([]byte, bool) {
	s := p.d.scratch
	out := len(s)
	s = append(s, p.data[start:i]...)
	for i < len(p.data) {
		c := p.data[i]
		switch {
		case c == '"':
			p.pos = i + 1
			p.d.scratch = s
			return s[out:len(s):len(s)], true
		case c < 0x20:
			p.bad = errControlChar
			return nil, false
		case c != '\\':
			s = append(s, c)
			i++
			continue
		}
		if i+1 >= len(p.data) {
			break
		}
		switch p.data[i+1] {
		case '"', '\\', '/':
			s = append(s, p.data[i+1])
		case 'b':
			s = append(s, '\b')
		case 'f':
			s = append(s, '\f')
		case 'n':
			s = append(s, '\n')
		case 'r':
			s = append(s, '\r')
		case 't':
			s = append(s, '\t')
		case 'u':
			r, n := p.unicode(i)
			if n == 0 {
				p.bad = errEscape
				return nil, false
			}
			s = utf8.AppendRune(s, r)
			i += n
			continue
		default:
			p.bad = errEscape
			return nil, false
		}
		i += 2
	}
	p.bad = errSyntax
	return nil, false
}

// unicode decodes \uXXXX (and a following low surrogate) at i. It returns
// the rune and the bytes consumed, or n == 0 on a malformed escape. Unpaired
// surrogates become U+FFFD, as in encoding/json.
func (p *parser) unicode(i int) (rune, int) {
	r := hex4(p.data, i+2)
	if r < 0 {
		return 0, 0
	}
	if !utf16.IsSurrogate(r) {
		return r, 6
	}
	if i+12 <= len(p.data) && p.data[i+6] == '\\' && p.data[i+7] == 'u' {
		if r2 := hex4(p.data, i+8); r2 >= 0 {
			if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
				return dec, 12
			}
		}
	}
	return utf8.RuneError, 6
}

func hex4(b []byte, i int) rune {
	if i+4 > len(b) {
		return -1
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// uint parses a non-negative JSON integer that fits in a uint64.
func (p *parser) uint() (uint64, bool) {
	start := p.pos
	var v uint64
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if c < '0' || c > '9' {
			break
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
		p.pos++
	}
	n := p.pos - start
	if n == 0 || (n > 1 && p.data[start] == '0') {
		return 0, false
	}
	switch p.peek() {
	case '.', 'e', 'E':
		return 0, false
	}
	return v, true
}

// skip skips one JSON value of any kind.
func (p *parser) skip(depth int) bool {
	if depth > MaxDepth {
		p.bad = errTooDeep
		return false
	}
	switch c := p.peek(); {
	case c == '"':
		_, ok := p.str()
		return ok
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		p.pos++
		p.ws()
		if p.consume(closer) {
			return true
		}
		for {
			p.ws()
			if closer == '}' {
				if _, ok := p.str(); !ok {
					return false
				}
				p.ws()
				if !p.consume(':') {
					return false
				}
				p.ws()
			}
			if !p.skip(depth + 1) {
				return false
			}
			p.ws()
			if p.consume(',') {
				continue
			}
			return p.consume(closer)
		}
	case c == '-' || ('0' <= c && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	}
	return false
}

func (p *parser) literal(s string) bool {
	if len(p.data)-p.pos >= len(s) && string(p.data[p.pos:p.pos+len(s)]) == s {
		p.pos += len(s)
		return true
	}
	return false
}

// number skips a JSON number, checking its grammar.
func (p *parser) number() bool {
	p.consume('-')
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && '0' <= p.data[p.pos] && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.consume('0') {
		// a leading zero stands alone
	} else if digits() == 0 {
		return false
	}
	if p.consume('.') && digits() == 0 {
		return false
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.pos++
		if !p.consume('+') {
			p.consume('-')
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// MsgFields returns the msg_id and from fields of a msg frame that the
// server encoded (AppendMsg, or a head and AppendMsgTail). ok is false if
// the frame is not a JSON object or lacks either field. The results are
// valid until d's next use.
func (d *Decoder) MsgFields(frame []byte) (msgID, from []byte, ok bool) {
	d.scratch = d.scratch[:0]
	p := parser{data: frame, d: d}
	p.ws()
	if !p.consume('{') {
		return nil, nil, false
	}
	for {
		p.ws()
		key, ok := p.str()
		if !ok {
			return nil, nil, false
		}
		p.ws()
		if !p.consume(':') {
			return nil, nil, false
		}
		p.ws()
		switch string(key) {
		case "msg_id":
			msgID, ok = p.str()
		case "from":
			from, ok = p.str()
		default:
			ok = p.skip(0)
		}
		if !ok {
			return nil, nil, false
		}
		if msgID != nil && from != nil {
			return msgID, from, true
		}
		p.ws()
		if !p.consume(',') {
			return nil, nil, false
		}
	}
}
