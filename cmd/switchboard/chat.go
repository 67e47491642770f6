package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/switchboard/switchboard/client/chatcli"
)

func chatCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	user := fs.String("user", "", "who you are (the token's user); required")
	device := fs.String("device", "", "which of your devices this is (the token's dev), to chat from several at once; optional")
	server := fs.String("server", "ws://127.0.0.1:8080/v1/ws", "the server's WebSocket URL")
	assets := fs.String("assets", "", "the asset API's URL, for /send and /save (default: the server's host, port 8081, http://…/v1/assets)")
	tok := fs.String("token", "", "access token; default: minted with the secret in --data-dir (a local server's)")
	dataDir := fs.String("data-dir", "./data", "the local server's data directory, for minting a token")
	stateDir := fs.String("state-dir", "", "where the outbox and cursor are kept (default: <user config dir>/switchboard/<user>[@<device>])")
	autoRead := fs.Bool("auto-read", true, "send read receipts for messages as they are shown")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: switchboard chat --user ID [--device ID] [--server URL] [--token TOKEN]\n\n"+
			"A terminal chat. Type \"bob: hello\" to send; ✓ sent, ✓✓ delivered, ✓✓ read.\n"+
			"Files: /send <path> [caption] sends one, /save <n> [dir] saves a received one.\n"+
			"Groups, last seen, privacy, contacts and devices: type /help in the chat.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user == "" {
		fs.Usage()
		return fmt.Errorf("chat: --user is required")
	}
	if *tok == "" {
		t, err := mintToken(*dataDir, "", *user, *device, 24*time.Hour)
		if err != nil {
			return fmt.Errorf("chat: no --token, and minting one from %s failed: %w", *dataDir, err)
		}
		*tok = t
	}
	return chatcli.Run(ctx, chatcli.Options{
		User: *user, Device: *device, Server: *server, AssetsURL: *assets, Token: *tok, StateDir: *stateDir, AutoRead: autoRead,
	}, os.Stdin, os.Stdout)
}
