package main

import (
	"context"
	"errors"
)

// loadtestCmd is replaced by the load-test harness (loadtest/).
func loadtestCmd(ctx context.Context, args []string) error {
	return errors.New("loadtest: not built yet")
}
