// Package fsutil holds the file-system steps that durable writes share.
package fsutil

import "os"

// SyncDir fsyncs a directory, so that a file created or renamed in it
// survives a crash. On platforms where directories cannot be fsynced it
// does nothing (rename there is as durable as it gets).
func SyncDir(dir string) error {
	if !canSyncDir {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
