package client

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/switchboard/switchboard/internal/fsutil"
)

// entry is one outbox item: a client frame (send or receipt) that carries
// an id and stays until the server acks that id.
type entry struct {
	id       string
	frame    []byte // the client frame, resent as is
	send     bool   // a "send" (its ack becomes an Ack event); else a receipt
	acked    bool   // removed; still in entries until the slice is compacted
	inflight bool   // written on the current connection, ack pending
	attempts int    // retriable errors so far

	// For sends: finding the send whose own copy arrives before its ack
	// (own.go).
	sum         uint64 // sendSum of its target and body
	maybeStored bool   // written on an earlier connection (or process), no ack seen
	claimed     string // the msg id of the copy taken for this send's
}

// outbox keeps unacked entries in their original order. It is not safe for
// concurrent use: the Client guards it with its mutex.
//
// With a log (StateDir set) every add is appended and fsynced before add
// returns; removals are appended without fsync, since a lost removal only
// causes a resend that the server dedupes by id.
type outbox struct {
	entries  []*entry // in order of Send; acked ones are dropped lazily
	byID     map[string]*entry
	hint     int // entries[:hint] hold no pending entry
	inflight int // entries written on this connection and not acked
	log      *outboxLog
	dels     int       // removal records in the log since the last rewrite
	paused   time.Time // nothing is sent before this (the server said "retry later")
	window   int       // in-flight limit after a "retry later"; 0: none but take's max
	growth   int       // acks since window last grew
}

// compactMin is the number of removal records after which the log is
// rewritten (when they also outnumber the live entries).
const compactMin = 256

func newOutbox(log *outboxLog, loaded []*entry) *outbox {
	o := &outbox{byID: make(map[string]*entry, len(loaded)), log: log}
	for _, e := range loaded {
		o.entries = append(o.entries, e)
		o.byID[e.id] = e
	}
	return o
}

// len returns the number of unacked entries.
func (o *outbox) len() int { return len(o.byID) }

// add appends e, durably when the outbox has a log.
func (o *outbox) add(e *entry) error {
	if o.log != nil {
		if err := o.log.append(addRecord(e), true); err != nil {
			return err
		}
	}
	o.entries = append(o.entries, e)
	o.byID[e.id] = e
	return nil
}

// remove deletes the entry with id and returns it, or nil if there is none
// (an ack for an entry already removed, e.g. after a crash).
func (o *outbox) remove(id string) (*entry, error) {
	e := o.byID[id]
	if e == nil {
		return nil, nil
	}
	if o.window > 0 {
		// Additive increase, by one per window of acks (TCP's congestion
		// avoidance): probe the server's rate limit gently.
		o.growth++
		if o.growth >= o.window {
			o.window++
			o.growth = 0
		}
	}
	delete(o.byID, id)
	e.acked = true
	if e.inflight {
		e.inflight = false
		o.inflight--
	}
	if n := len(o.entries); n >= 64 && len(o.byID) < n/2 {
		o.compactSlice()
	}
	if o.log == nil {
		return e, nil
	}
	o.dels++
	if o.dels >= compactMin && o.dels >= len(o.byID) {
		return e, o.rewrite()
	}
	return e, o.log.append(delRecord(id), false)
}

func (o *outbox) compactSlice() {
	live := o.entries[:0]
	for _, e := range o.entries {
		if !e.acked {
			live = append(live, e)
		}
	}
	clear(o.entries[len(live):])
	o.entries = live
	o.hint = 0
}

func (o *outbox) rewrite() error {
	o.compactSlice()
	if err := o.log.rewrite(o.entries); err != nil {
		return err
	}
	o.dels = 0
	return nil
}

// resetInflight makes every entry pending again, for a new connection
// (whose rate limit starts afresh).
func (o *outbox) resetInflight() {
	for _, e := range o.entries {
		if e.inflight {
			e.maybeStored = true // the server may have it, unacked
		}
		e.inflight = false
	}
	o.inflight = 0
	o.hint = 0
	o.paused = time.Time{}
	o.window = 0
}

// retry makes e pending again and pauses all sending until until. Pausing
// everything, rather than delaying e alone, keeps the original order: the
// entries after e that the server refused too go out after it, not before.
// The in-flight window then restarts at 1 and grows by one per ack, so that
// a rate limiter that lets one entry through does not let a later one
// overtake an earlier one refused in the same burst, and does not see a
// flood of refused frames.
func (o *outbox) retry(e *entry, until time.Time) {
	if e.inflight {
		e.inflight = false
		o.inflight--
	}
	e.attempts++
	if until.After(o.paused) {
		o.paused = until
	}
	o.window = 1
	o.growth = 0
	o.hint = 0
}

// take marks pending entries as in flight, in order, while fewer than max
// are in flight, and appends their frames to dst. While sending is paused it
// takes nothing and returns when the pause ends as next (zero otherwise).
func (o *outbox) take(now time.Time, max int, dst [][]byte) (out [][]byte, next time.Time) {
	if now.Before(o.paused) {
		return dst, o.paused
	}
	if o.window > 0 && o.window < max {
		max = o.window
	}
	for i := o.hint; i < len(o.entries); i++ {
		e := o.entries[i]
		if e.acked || e.inflight {
			o.hint = i + 1
			continue
		}
		if o.inflight >= max {
			break
		}
		e.inflight = true
		o.inflight++
		dst = append(dst, e.frame)
		o.hint = i + 1
	}
	return dst, time.Time{}
}

func (o *outbox) close() error {
	if o.log == nil {
		return nil
	}
	return o.log.close()
}

// Log records. Each line is "<crc32c of the JSON, 8 hex digits> <JSON>\n";
// the JSON is {"op":"add","id":…,"frame":{…}} or {"op":"del","id":…}.
type logRecord struct {
	Op    string          `json:"op"`
	ID    string          `json:"id"`
	Frame json.RawMessage `json:"frame,omitempty"`
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func encodeRecord(r logRecord) []byte {
	js, err := json.Marshal(r)
	if err != nil {
		panic(err) // strings and valid JSON only: cannot fail
	}
	line := make([]byte, 0, len(js)+10)
	line = hex.AppendEncode(line, binary.BigEndian.AppendUint32(nil, crc32.Checksum(js, crcTable)))
	line = append(line, ' ')
	line = append(line, js...)
	return append(line, '\n')
}

func addRecord(e *entry) []byte {
	return encodeRecord(logRecord{Op: "add", ID: e.id, Frame: e.frame})
}

func delRecord(id string) []byte { return encodeRecord(logRecord{Op: "del", ID: id}) }

// decodeRecord parses one line without its newline.
func decodeRecord(line []byte) (logRecord, error) {
	var r logRecord
	if len(line) < 10 || line[8] != ' ' {
		return r, errors.New("short record")
	}
	var sum [4]byte
	if _, err := hex.Decode(sum[:], line[:8]); err != nil {
		return r, err
	}
	js := line[9:]
	if crc32.Checksum(js, crcTable) != binary.BigEndian.Uint32(sum[:]) {
		return r, errors.New("checksum mismatch")
	}
	if err := json.Unmarshal(js, &r); err != nil {
		return r, err
	}
	if r.ID == "" || (r.Op != "add" && r.Op != "del") || (r.Op == "add" && len(r.Frame) == 0) {
		return r, errors.New("invalid record")
	}
	return r, nil
}

// outboxLog is the append-only file StateDir/outbox.
type outboxLog struct {
	dir  string
	f    *os.File
	size int64
	log  *slog.Logger
}

const (
	outboxName = "outbox"
	tmpSuffix  = ".tmp"
)

// openOutboxLog reads StateDir/outbox and returns its live entries in order.
// A torn last record (a crash during append) is cut off; a damaged record
// elsewhere is skipped with a warning. The file is rewritten without removed
// entries before it is reopened for appending.
func openOutboxLog(dir string, log *slog.Logger) (*outboxLog, []*entry, error) {
	path := filepath.Join(dir, outboxName)
	var live []*entry
	byID := make(map[string]*entry)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("client: read outbox: %w", err)
	}
	dels := 0
	for lineNo := 1; len(data) > 0; lineNo++ {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			log.Warn("client: outbox: dropping torn last record", "bytes", len(data))
			break
		}
		line := data[:i]
		data = data[i+1:]
		r, err := decodeRecord(line)
		if err != nil {
			log.Warn("client: outbox: skipping damaged record", "line", lineNo, "err", err)
			continue
		}
		switch r.Op {
		case "add":
			if byID[r.ID] != nil {
				continue
			}
			e, err := loadedEntry(r)
			if err != nil {
				log.Warn("client: outbox: skipping record with a bad frame", "line", lineNo, "err", err)
				continue
			}
			byID[r.ID] = e
			live = append(live, e)
		case "del":
			dels++
			if e := byID[r.ID]; e != nil {
				e.acked = true
				delete(byID, r.ID)
			}
		}
	}
	kept := live[:0]
	for _, e := range live {
		if !e.acked {
			kept = append(kept, e)
		}
	}
	l := &outboxLog{dir: dir, log: log}
	if err := l.rewrite(kept); err != nil {
		return nil, nil, err
	}
	if dels > 0 {
		log.Debug("client: outbox compacted", "live", len(kept), "removed", dels)
	}
	return l, kept, nil
}

// loadedEntry returns the entry of an add record read back from the log.
// The previous process may have sent it, unacked.
func loadedEntry(r logRecord) (*entry, error) {
	var f sendFrame
	if err := json.Unmarshal(r.Frame, &f); err != nil {
		return nil, err
	}
	if f.Type != "send" {
		return &entry{id: r.ID, frame: []byte(r.Frame)}, nil
	}
	e := newSendEntry(f, []byte(r.Frame))
	e.id = r.ID
	e.maybeStored = true
	return e, nil
}

// append writes one record; with sync it returns only once the record is on
// stable storage. A failed write is cut off so that the next record starts
// on a fresh line.
func (l *outboxLog) append(rec []byte, sync bool) error {
	if l.f == nil {
		return ErrClosed
	}
	n, err := l.f.Write(rec)
	if err == nil && sync {
		err = l.f.Sync()
	}
	if err != nil {
		if n > 0 {
			_ = l.f.Truncate(l.size)
		}
		return fmt.Errorf("client: outbox append: %w", err)
	}
	l.size += int64(n)
	return nil
}

// rewrite replaces the file with the add records of live, atomically and
// durably (write a temporary file, fsync, rename, fsync the directory),
// and reopens it for appending.
func (l *outboxLog) rewrite(live []*entry) error {
	var buf bytes.Buffer
	for _, e := range live {
		buf.Write(addRecord(e))
	}
	path := filepath.Join(l.dir, outboxName)
	if err := writeFileAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("client: outbox rewrite: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("client: outbox reopen: %w", err)
	}
	if l.f != nil {
		_ = l.f.Close()
	}
	l.f = f
	l.size = int64(buf.Len())
	return nil
}

func (l *outboxLog) close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// writeFileAtomic replaces path with data so that after a crash the file
// holds either its old or its new content, never a mix.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return fsutil.SyncDir(filepath.Dir(path))
}
