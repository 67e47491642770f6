package chatcli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"github.com/switchboard/switchboard/client"
)

// Files: /send uploads a file and sends it in the conversation; received
// files (and profile photos /whois shows) are numbered as they show, and
// /save <n> downloads one.

// maxFiles bounds the received files /save can name by number: the
// oldest are forgotten first (their numbers are never reused).
const maxFiles = 1000

// cmdSend sends a file, and a caption, in the conversation.
func (u *ui) cmdSend(ctx context.Context, args []string) {
	if len(args) == 0 {
		u.usage("/send <path> [caption]")
		return
	}
	u.mu.Lock()
	conv := u.conv
	u.mu.Unlock()
	if conv == (conversation{}) {
		u.printf("  /send: no conversation; /to <user> or /group <name> first\n")
		return
	}
	path, caption := args[0], strings.Join(args[1:], " ")
	if st, err := os.Stat(path); err != nil {
		u.failed("/send", err)
		return
	} else if !st.Mode().IsRegular() {
		u.printf("  /send: %s is not a file\n", path)
		return
	} else if st.Size() >= 1<<20 {
		u.printf("  uploading %s (%s)…\n", filepath.Base(path), humanSize(st.Size()))
	}
	var id string
	var att client.Attachment
	var err error
	if conv.group != "" {
		id, att, err = u.c.SendGroupFile(ctx, conv.group, path, caption)
	} else {
		id, att, err = u.c.SendFile(ctx, conv.peer, path, caption)
	}
	if err != nil {
		u.failed("/send", err)
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.byClientID[id] = &sent{to: conv.peer, group: conv.group, body: sentText(caption, &att)}
	if !u.online {
		u.writef("  … queued: will send when connected\n")
	}
}

// sentText is how a message this user sent shows: its body, or for a file
// "📎 plan.pdf (12 KB) caption".
func sentText(body string, a *client.Attachment) string {
	if a == nil {
		return body
	}
	s := fmt.Sprintf("📎 %s (%s)", displayName(a), humanSize(a.Size))
	if body != "" {
		s += " " + body
	}
	return s
}

// receivedText is how a received message shows; a file is numbered for
// /save: "📎 plan.pdf (12 KB, file) [/save 3] caption". Caller holds u.mu.
func (u *ui) receivedText(m client.Message) string {
	a := m.Attachment
	if a == nil || a.AssetID == "" {
		return m.Body
	}
	n := u.addFile(*a)
	kind := a.Kind
	if kind == "" {
		kind = "file"
	}
	s := fmt.Sprintf("📎 %s (%s, %s) [/save %d]", displayName(a), humanSize(a.Size), kind, n)
	if m.Body != "" {
		s += " " + m.Body
	}
	return s
}

// addFile numbers a for /save and returns its number. Caller holds u.mu.
func (u *ui) addFile(a client.Attachment) int {
	u.files = append(u.files, a)
	if len(u.files) > maxFiles {
		u.filesBase += len(u.files) - maxFiles
		u.files = u.files[len(u.files)-maxFiles:]
	}
	return u.filesBase + len(u.files)
}

// displayName is an attachment's name for the screen.
func displayName(a *client.Attachment) string {
	if a.Name == "" {
		return "file"
	}
	return printable(a.Name)
}

// humanSize is "512 B", "12 KB", "1.5 MB".
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, unit := range []string{"KB", "MB", "GB", "TB"} {
		f /= 1024
		if f < 1024 || unit == "TB" {
			if f < 10 {
				return strconv.FormatFloat(f, 'f', 1, 64) + " " + unit
			}
			return strconv.FormatFloat(f, 'f', 0, 64) + " " + unit
		}
	}
	panic("unreachable")
}

// saveName is the file name an attachment is saved under: its name made
// safe (never a path, no hidden file, no control characters), or one made
// of its asset id.
func saveName(a *client.Attachment) string {
	name := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || unicode.IsControl(r) {
			return '_'
		}
		return r
	}, a.Name)
	name = strings.TrimLeft(strings.TrimSpace(name), ".")
	if len(name) > 200 {
		ext := filepath.Ext(name)
		if len(ext) > 20 {
			ext = ""
		}
		name = strings.ToValidUTF8(name[:200-len(ext)], "") + ext
	}
	if name == "" {
		name = "asset-" + strings.Map(func(r rune) rune {
			if r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
				return r
			}
			return '_'
		}, a.AssetID)
	}
	return name
}

// cmdSave downloads the n-th received file into a directory.
func (u *ui) cmdSave(ctx context.Context, args []string) {
	if len(args) < 1 || len(args) > 2 {
		u.usage("/save <n> [dir]")
		return
	}
	n, err := strconv.Atoi(args[0])
	u.mu.Lock()
	i := n - u.filesBase - 1
	ok := err == nil && i >= 0 && i < len(u.files)
	var a client.Attachment
	if ok {
		a = u.files[i]
	}
	last := u.filesBase + len(u.files)
	u.mu.Unlock()
	if !ok {
		if last == 0 {
			u.printf("  /save: no file received since the chat started\n")
		} else {
			u.printf("  /save: no file %s; files are numbered up to %d\n", args[0], last)
		}
		return
	}
	dir := "."
	if len(args) == 2 {
		dir = args[1]
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		u.failed("/save", err)
		return
	}
	path := filepath.Join(dir, saveName(&a))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		u.printf("  /save: %s exists; not overwritten\n", path)
		return
	}
	if err != nil {
		u.failed("/save", err)
		return
	}
	h := sha256.New()
	cw := &countWriter{}
	err = u.c.Download(ctx, a.AssetID, io.MultiWriter(f, h, cw))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && a.SHA256 != "" && hex.EncodeToString(h.Sum(nil)) != a.SHA256 {
		err = errors.New("the bytes received do not match the file's SHA-256")
	}
	if err != nil {
		_ = os.Remove(path)
		u.failed("/save", err)
		return
	}
	u.printf("  saved %s (%s) as %s\n", displayName(&a), humanSize(cw.n), path)
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
