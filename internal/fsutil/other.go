//go:build !unix

package fsutil

const canSyncDir = false
