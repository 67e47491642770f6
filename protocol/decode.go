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
)

// Limits of the decoder. Frames beyond them are refused with bad_request.
const (
	// MaxMsgIDs is the most msg_ids one receipt frame may carry.
	MaxMsgIDs = 256
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

	HasType, HasID, HasTo, HasBody, HasStatus, HasMsgIDs, HasAfter bool
}

func (r *Request) reset() {
	ids := r.MsgIDs[:0]
	*r = Request{MsgIDs: ids}
}

// Decoder decodes client frames. The zero value is ready to use.
type Decoder struct {
	scratch []byte
	ids     [MaxMsgIDs][]byte
}

// Decode parses one client frame into r. data must be valid UTF-8 (the
// gateway checks text frames before decoding). On error r is partly filled
// and the returned *Error says what was wrong, as the error frame will.
func (d *Decoder) Decode(data []byte, r *Request) *Error {
	r.reset()
	d.scratch = d.scratch[:0]
	if r.MsgIDs == nil {
		r.MsgIDs = d.ids[:0:MaxMsgIDs]
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
		switch string(v) {
		case "send":
			r.Type = TypeSend
		case "receipt":
			r.Type = TypeReceipt
		case "sync":
			r.Type = TypeSync
		default:
			r.Type = TypeUnknown
		}
	case "id":
		v, e := p.strField(errTypeID)
		if e != nil {
			return e
		}
		r.ID, r.HasID = v, true
	case "to":
		v, e := p.strField(errTypeTo)
		if e != nil {
			return e
		}
		r.To, r.HasTo = v, true
	case "body":
		v, e := p.strField(errTypeBody)
		if e != nil {
			return e
		}
		r.Body, r.HasBody = v, true
	case "status":
		v, e := p.strField(errTypeStatus)
		if e != nil {
			return e
		}
		r.Status, r.HasStatus = v, true
	case "msg_ids":
		if !p.consume('[') {
			return errTypeMsgIDs
		}
		r.MsgIDs, r.HasMsgIDs = r.MsgIDs[:0], true
		p.ws()
		if p.consume(']') {
			return nil
		}
		for {
			p.ws()
			if p.peek() != '"' {
				return errTypeMsgIDs
			}
			v, ok := p.str()
			if !ok {
				return p.fail()
			}
			if len(r.MsgIDs) == cap(r.MsgIDs) {
				return errTooManyIDs
			}
			r.MsgIDs = append(r.MsgIDs, v)
			p.ws()
			if p.consume(',') {
				continue
			}
			if p.consume(']') {
				return nil
			}
			return errSyntax
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
