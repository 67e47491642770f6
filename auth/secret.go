package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/switchboard/switchboard/internal/fsutil"
)

// SecretFile is the name of the generated secret inside the data directory.
const SecretFile = "secret.key"

// generatedSecretBytes is the size of a secret LoadOrCreateSecret makes.
const generatedSecretBytes = 32

// maxSecretFileBytes bounds what LoadSecret reads: 256 secret bytes in hex
// plus line ending and whitespace.
const maxSecretFileBytes = 1024

// ErrSecretFile is wrapped by LoadSecret and LoadOrCreateSecret when the
// file exists but must not be used: not a regular file, accessible to group
// or others, or not holding MinSecretBytes or more of hex.
var ErrSecretFile = errors.New("auth: unusable secret file")

// LoadOrCreateSecret returns the secret kept in dataDir/secret.key,
// creating dataDir (mode 0700) and the file (mode 0600, 32 random bytes
// hex-encoded) if they are missing.
//
// The file is written to a temporary name, fsynced, then hard-linked into
// place, which fails rather than overwrites if the name exists; the
// directory is fsynced after. So a reader never sees a partial file, and
// when processes race to create it, exactly one secret wins and every one
// of them returns it. An existing file is read with LoadSecret's checks and
// never replaced: a bad one is an error for the operator to resolve. Needs
// a file system with hard links (any local Unix one). Safe for concurrent
// use.
func LoadOrCreateSecret(dataDir string) ([]byte, error) {
	if dataDir == "" {
		return nil, errors.New("auth: LoadOrCreateSecret: empty data directory")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: create data directory: %w", err)
	}
	path := filepath.Join(dataDir, SecretFile)
	secret, err := LoadSecret(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return secret, err
	}
	return createSecret(dataDir, path)
}

func createSecret(dir, path string) ([]byte, error) {
	secret := make([]byte, generatedSecretBytes)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("auth: generate secret: %w", err)
	}
	// CreateTemp opens with O_EXCL and mode 0600.
	tmp, err := os.CreateTemp(dir, "."+SecretFile+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("auth: create secret: %w", err)
	}
	defer os.Remove(tmp.Name()) // the link, if any, keeps the file
	_, err = tmp.WriteString(hex.EncodeToString(secret) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("auth: write secret: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process won; its file was complete before it
			// appeared under this name.
			return LoadSecret(path)
		}
		return nil, fmt.Errorf("auth: install secret: %w", err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return nil, fmt.Errorf("auth: install secret: %w", err)
	}
	return secret, nil
}

// LoadSecret reads a secret from an operator-provided file: hex, at least
// MinSecretBytes once decoded, surrounding whitespace ignored (so
// `openssl rand -hex 32 > f` works). The file must be a regular file with
// no permission bits for group or others (chmod 600 or 400); otherwise the
// error wraps ErrSecretFile. A missing file gives an error wrapping
// fs.ErrNotExist. Safe for concurrent use.
func LoadSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read secret: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("auth: read secret: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrSecretFile, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o, group or others may access it; want 0600",
			ErrSecretFile, path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("auth: read secret: %w", err)
	}
	if len(data) > maxSecretFileBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrSecretFile, path, maxSecretFileBytes)
	}
	text := bytes.TrimSpace(data)
	secret := make([]byte, hex.DecodedLen(len(text)))
	if _, err := hex.Decode(secret, text); err != nil {
		return nil, fmt.Errorf("%w: %s does not hold hex", ErrSecretFile, path)
	}
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("%w: %s holds %d bytes, want at least %d",
			ErrSecretFile, path, len(secret), MinSecretBytes)
	}
	return secret, nil
}
