package auth

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	s1, err := LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s1) != 32 || bytes.Equal(s1, make([]byte, 32)) {
		t.Fatalf("secret %x: want 32 random bytes", s1)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Errorf("data dir mode %#o, want 0700", perm)
	}
	path := filepath.Join(dir, SecretFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("secret mode %#o, want 0600", perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 65 || data[64] != '\n' {
		t.Errorf("file holds %q, want 64 hex digits and a newline", data)
	}

	s2, err := LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s1, s2) {
		t.Error("second call returned a different secret")
	}
	if _, err := NewVerifier(s1); err != nil {
		t.Errorf("generated secret refused: %v", err)
	}
	assertOnlySecret(t, dir)
}

// assertOnlySecret checks that no temporary file was left behind.
func assertOnlySecret(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != SecretFile {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("data dir holds %v, want only %s", names, SecretFile)
	}
}

func TestLoadOrCreateSecretRace(t *testing.T) {
	for round := range 20 {
		dir := filepath.Join(t.TempDir(), "data")
		const n = 8
		var (
			wg      sync.WaitGroup
			secrets [n][]byte
			errs    [n]error
			start   = make(chan struct{})
		)
		for i := range n {
			wg.Go(func() {
				<-start
				secrets[i], errs[i] = LoadOrCreateSecret(dir)
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d, goroutine %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(secrets[i], secrets[0]) {
				t.Fatalf("round %d: goroutines got different secrets", round)
			}
		}
		onDisk, err := LoadSecret(filepath.Join(dir, SecretFile))
		if err != nil || !bytes.Equal(onDisk, secrets[0]) {
			t.Fatalf("round %d: file holds another secret (%v)", round, err)
		}
		assertOnlySecret(t, dir)
	}
}

func TestLoadOrCreateSecretRefusesBadFile(t *testing.T) {
	good := strings.Repeat("ab", 32) + "\n"
	for _, tc := range []struct {
		name    string
		content string
		mode    fs.FileMode
	}{
		{"world readable", good, 0o604},
		{"group readable", good, 0o640},
		{"group writable", good, 0o620},
		{"not hex", strings.Repeat("zz", 32), 0o600},
		{"too short", strings.Repeat("ab", 31), 0o600},
		{"empty", "", 0o600},
		{"too large", strings.Repeat("ab", 600), 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, SecretFile)
			if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil { // umask
				t.Fatal(err)
			}
			_, err := LoadOrCreateSecret(dir)
			if !errors.Is(err, ErrSecretFile) {
				t.Fatalf("got %v, want ErrSecretFile", err)
			}
			if tc.content != "" && strings.Contains(err.Error(), tc.content[:8]) {
				t.Errorf("error quotes the file: %v", err)
			}
			after, _ := os.ReadFile(path)
			if string(after) != tc.content {
				t.Error("bad file was replaced")
			}
		})
	}
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode fs.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hex64 := strings.Repeat("0f", 64)
	for _, tc := range []struct {
		name, content string
		mode          fs.FileMode
		wantLen       int
	}{
		{"openssl", strings.Repeat("a1", 32) + "\n", 0o600, 32},
		{"crlf and spaces", "  " + strings.Repeat("A1", 32) + "\r\n", 0o400, 32},
		{"longer secret", hex64, 0o600, 64},
	} {
		s, err := LoadSecret(write(tc.name, tc.content, tc.mode))
		if err != nil || len(s) != tc.wantLen {
			t.Errorf("%s: %d bytes, %v; want %d bytes", tc.name, len(s), err, tc.wantLen)
		}
	}

	if _, err := LoadSecret(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSecret(sub); !errors.Is(err, ErrSecretFile) {
		t.Errorf("directory: %v, want ErrSecretFile", err)
	}
	if _, err := LoadSecret(write("odd", strings.Repeat("a", 65), 0o600)); !errors.Is(err, ErrSecretFile) {
		t.Errorf("odd hex: %v, want ErrSecretFile", err)
	}
	if _, err := LoadOrCreateSecret(""); err == nil {
		t.Error("empty data dir accepted")
	}
}
