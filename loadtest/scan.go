package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/gobwas/ws"
)

// Server frames are recognised by scanning, not decoded: the server writes
// "type" first, and the harness only needs a few fields.

type frameKind uint8

const (
	typeOther frameKind = iota
	typeAck
	typeMsg
	typeError
	typeSynced
	typeReceipt
)

var (
	prefixAck     = []byte(`{"type":"ack"`)
	prefixMsg     = []byte(`{"type":"msg"`)
	prefixError   = []byte(`{"type":"error"`)
	prefixSynced  = []byte(`{"type":"synced"`)
	prefixReceipt = []byte(`{"type":"receipt"`)
)

// frameType classifies a server frame by its leading "type" member.
func frameType(p []byte) frameKind {
	switch {
	case bytes.HasPrefix(p, prefixMsg):
		return typeMsg
	case bytes.HasPrefix(p, prefixAck):
		return typeAck
	case bytes.HasPrefix(p, prefixError):
		return typeError
	case bytes.HasPrefix(p, prefixSynced):
		return typeSynced
	case bytes.HasPrefix(p, prefixReceipt):
		return typeReceipt
	}
	return typeOther
}

// field returns the raw bytes of the JSON string that follows key (which
// includes the opening quote, e.g. `"code":"`), up to the next quote. It is
// meant for values without escapes: ids and codes.
func field(p []byte, key string) []byte {
	i := bytes.Index(p, []byte(key))
	if i < 0 {
		return nil
	}
	v := p[i+len(key):]
	if j := bytes.IndexByte(v, '"'); j >= 0 {
		return v[:j]
	}
	return nil
}

// eachID calls fn with each id of a receipt frame's "msg_ids" array (ids
// without escapes, as the server's are).
func eachID(p []byte, fn func(id []byte)) {
	i := bytes.Index(p, []byte(`"msg_ids":[`))
	if i < 0 {
		return
	}
	v := p[i+len(`"msg_ids":[`):]
	for len(v) > 0 && v[0] == '"' {
		j := bytes.IndexByte(v[1:], '"')
		if j < 0 {
			return
		}
		fn(v[1 : 1+j])
		v = v[2+j:]
		if len(v) > 0 && v[0] == ',' {
			v = v[1:]
		}
	}
}

// idDigits is the width of the send index in ids and bodies.
const idDigits = 10

// index parses the idDigits-digit send index at the start of b.
func index(b []byte) (uint64, bool) {
	if len(b) < idDigits {
		return 0, false
	}
	var k uint64
	for _, c := range b[:idDigits] {
		if c < '0' || c > '9' {
			return 0, false
		}
		k = k*10 + uint64(c-'0')
	}
	return k, true
}

var (
	keyID   = []byte(`"id":"`)
	keyBody = []byte(`"body":"`)
)

// ackIndex returns the send index in an ack or error frame's id.
func ackIndex(p []byte) (uint64, bool) {
	i := bytes.Index(p, keyID)
	if i < 0 {
		return 0, false
	}
	v := p[i+len(keyID):]
	if len(v) <= idDigits || v[idDigits] != '"' {
		return 0, false
	}
	return index(v)
}

// msgIndex returns the send index at the start of a msg frame's body.
func msgIndex(p []byte) (uint64, bool) {
	i := bytes.Index(p, keyBody)
	if i < 0 {
		return 0, false
	}
	return index(p[i+len(keyBody):])
}

// putIndex writes k as idDigits digits into f at off, masked as the
// payload byte at payload offset pay is masked (RFC 6455 §5.3).
func putIndex(f []byte, off, pay int, k uint64, mask [4]byte) {
	for i := idDigits - 1; i >= 0; i-- {
		f[off+i] = byte('0'+k%10) ^ mask[(pay+i)&3]
		k /= 10
	}
}

// stageError is an error with the step of the run where it happened.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

func stageErr(stage string, err error) error {
	var se *stageError
	if errors.As(err, &se) {
		return err
	}
	return &stageError{stage, err}
}

// Kind returns a short, fixed label for an error of the harness, such as
// "dial: refused", "upgrade: http 401", "sync: timeout", "read: close 4000",
// for the failure counts of a report.
func Kind(err error) string {
	if err == nil {
		return ""
	}
	stage := ""
	var se *stageError
	if errors.As(err, &se) {
		stage = se.stage + ": "
	}
	var (
		status ws.StatusError
		ce     *CloseError
		sv     *ServerError
		ne     net.Error
	)
	switch {
	case errors.As(err, &status):
		return fmt.Sprintf("%shttp %d", stage, int(status))
	case errors.As(err, &ce):
		return fmt.Sprintf("%sclose %d", stage, ce.Code)
	case errors.As(err, &sv):
		return stage + "error frame " + sv.Code
	case errors.Is(err, context.Canceled):
		return stage + "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return stage + "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return stage + "reset"
	case errors.Is(err, syscall.EPIPE):
		return stage + "broken pipe"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return stage + "address not available"
	case errors.Is(err, syscall.EADDRINUSE):
		return stage + "address in use"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return stage + "too many open files"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return stage + "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return stage + "eof"
	case errors.Is(err, net.ErrClosed):
		return stage + "closed"
	case errors.Is(err, ErrProtocol):
		return stage + "protocol"
	case errors.Is(err, ws.ErrHandshakeBadProtocol), errors.Is(err, ws.ErrHandshakeBadConnection),
		errors.Is(err, ws.ErrHandshakeBadUpgrade), errors.Is(err, ws.ErrHandshakeBadSecAccept):
		return stage + "bad handshake"
	}
	return stage + "other"
}

// counts is a set of counters by label. Safe for concurrent use.
type counts struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *counts) add(kind string, n int64) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]int64)
	}
	c.m[kind] += n
	c.mu.Unlock()
}

func (c *counts) addErr(err error) { c.add(Kind(err), 1) }

func (c *counts) merge(m map[string]int64) {
	for k, v := range m {
		c.add(k, v)
	}
}

func (c *counts) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int64, len(c.m))
	for k, v := range c.m {
		m[k] = v
	}
	return m
}

// mergedCounts adds count maps into a new one.
func mergedCounts(ms ...map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for _, m := range ms {
		for k, v := range m {
			out[k] += v
		}
	}
	return out
}

func (c *counts) total() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, v := range c.m {
		n += v
	}
	return n
}

// formatCounts renders counts as "a 3, b 1" (largest first).
func formatCounts(m map[string]int64) string {
	type kv struct {
		k string
		v int64
	}
	var l []kv
	for k, v := range m {
		l = append(l, kv{k, v})
	}
	sort.Slice(l, func(i, j int) bool {
		if l[i].v != l[j].v {
			return l[i].v > l[j].v
		}
		return l[i].k < l[j].k
	})
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", e.k, e.v)
	}
	return b.String()
}
