package main

import (
	"context"
	"fmt"
)

func chatCmd(ctx context.Context, args []string) error {
	return fmt.Errorf("chat: not wired yet")
}
