package chatcli

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/switchboard/switchboard/client"
	"github.com/switchboard/switchboard/client/internal/fakeserver"
)

func withAssets(fs *fakeserver.Server) func(*Options) {
	return func(o *Options) { o.AssetsURL = fs.AssetsURL }
}

func TestSendAndSaveFile(t *testing.T) {
	fs := fakeserver.New(t)
	alice := startChat(t, fs, "alice", withAssets(fs))
	bob := startChat(t, fs, "bob", withAssets(fs))
	alice.waitFor(`(?m)^connected$`)
	bob.waitFor(`(?m)^connected$`)

	data := bytes.Repeat([]byte("line of the plan\n"), 1000) // 17000 bytes
	path := filepath.Join(t.TempDir(), "plan.txt")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	alice.typeLine("/send " + path)
	alice.waitFor(`(?m)^  /send: no conversation; /to <user> or /group <name> first$`)
	alice.typeLine("/to bob")
	alice.typeLine("/send " + path + " the plan, read it")
	alice.waitFor(`(?m)^\[12:04:05\] you → bob: 📎 plan\.txt \(17 KB\) the plan, read it  ✓$`)
	bob.waitFor(`(?m)^\[\d\d:\d\d:\d\d\] alice: 📎 plan\.txt \(17 KB, file\) \[/save 1\] the plan, read it$`)
	alice.waitFor(`(?m)^  ✓✓ read \(msg to bob: "📎 plan\.txt \(17 KB\) the plan, read it"\)$`)

	dir := t.TempDir()
	bob.typeLine("/save 1 " + dir)
	saved := filepath.Join(dir, "plan.txt")
	bob.waitFor(`(?m)^  saved plan\.txt \(17 KB\) as ` + regexp.QuoteMeta(saved) + `$`)
	got, err := os.ReadFile(saved)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("saved %d bytes (%v), want the %d sent", len(got), err, len(data))
	}
	bob.typeLine("/save 1 " + dir)
	bob.waitFor(`(?m)^  /save: ` + regexp.QuoteMeta(saved) + ` exists; not overwritten$`)
	bob.typeLine("/save 2")
	bob.waitFor(`(?m)^  /save: no file 2; files are numbered up to 1$`)
	alice.typeLine("/save 1")
	alice.waitFor(`(?m)^  /save: no file received since the chat started$`)
	alice.typeLine("/send " + filepath.Join(dir, "missing"))
	alice.waitFor(`(?m)^  /send: .*no such file or directory$`)
}

func TestGroupFile(t *testing.T) {
	fs := fakeserver.New(t)
	alice := startChat(t, fs, "alice", withAssets(fs))
	bob := startChat(t, fs, "bob", withAssets(fs))
	alice.waitFor(`(?m)^connected$`)
	bob.waitFor(`(?m)^connected$`)
	path := filepath.Join(t.TempDir(), "boots.txt")
	if err := os.WriteFile(path, []byte("bring boots"), 0o600); err != nil {
		t.Fatal(err)
	}
	alice.typeLine("/group new Trip bob")
	alice.waitFor(`(?m)^now talking in \[Trip\]$`)
	alice.typeLine("/send " + path)
	alice.waitFor(`(?m)^\[12:04:05\] you → \[Trip\]: 📎 boots\.txt \(11 B\)  ✓$`)
	bob.waitFor(`(?m)^\[\d\d:\d\d:\d\d\] \[Trip\] alice: 📎 boots\.txt \(11 B, file\) \[/save 1\]$`)
}

func TestSaveName(t *testing.T) {
	for name, want := range map[string]string{
		"plan.pdf":          "plan.pdf",
		"../../etc/passwd":  "_.._etc_passwd",
		`..\..\win.ini`:     `_.._win.ini`,
		".bashrc":           "bashrc",
		"..":                "asset-A1_2",
		"":                  "asset-A1_2",
		"a\x00b\nc":         "a_b_c",
		"C:evil":            "C_evil",
		"  spaced name.txt": "spaced name.txt",
	} {
		if got := saveName(&client.Attachment{AssetID: "A1/2", Name: name}); got != want {
			t.Errorf("saveName(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KB", 12 * 1024: "12 KB",
		1536 * 1024: "1.5 MB", 3 << 30: "3.0 GB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
