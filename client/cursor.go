package client

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const cursorName = "cursor"

// loadCursor reads StateDir/cursor: the highest seq handed to the Handler,
// as decimal text. A missing file is 0. A damaged one is reported, and the
// caller starts from 0: a cursor may lag (the Client dedupes what it sees
// again) but must never lead.
func loadCursor(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, cursorName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("client: read cursor: %w", err)
	}
	seq, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("client: parse cursor: %w", err)
	}
	return seq, nil
}

// saveCursor replaces StateDir/cursor atomically and durably.
func saveCursor(dir string, seq uint64) error {
	b := strconv.AppendUint(nil, seq, 10)
	b = append(b, '\n')
	if err := writeFileAtomic(filepath.Join(dir, cursorName), b); err != nil {
		return fmt.Errorf("client: save cursor: %w", err)
	}
	return nil
}
