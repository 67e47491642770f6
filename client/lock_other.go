//go:build !unix

package client

import (
	"os"
	"path/filepath"
)

// lockDir opens dir/lock. Platforms without flock get no exclusion: do not
// point two Clients at one StateDir there.
func lockDir(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
}
