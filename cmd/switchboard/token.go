package main

import (
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/switchboard/switchboard/auth"
)

func tokenCmd(args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	user := fs.String("user", "", "user id (the token's sub); required")
	device := fs.String("device", "", "device id (the token's dev); optional")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	dataDir := fs.String("data-dir", "./data", "the server's data directory, where its secret.key is")
	secretFile := fs.String("secret-file", "", "the secret file, if not <data-dir>/secret.key")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: switchboard token --user ID [--device ID] [--ttl DUR] [--data-dir DIR]\n\n"+
			"Prints an HS256 access token signed with the server's secret.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user == "" {
		fs.Usage()
		return fmt.Errorf("token: --user is required")
	}
	tok, err := mintToken(*dataDir, *secretFile, *user, *device, *ttl)
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

// mintToken signs a token with the secret of dataDir (created if missing,
// so that a token minted before the first serve still works) or secretFile.
func mintToken(dataDir, secretFile, user, device string, ttl time.Duration) (string, error) {
	var secret []byte
	var err error
	if secretFile != "" && secretFile != filepath.Join(dataDir, auth.SecretFile) {
		secret, err = auth.LoadSecret(secretFile)
	} else {
		secret, err = auth.LoadOrCreateSecret(dataDir)
	}
	if err != nil {
		return "", err
	}
	is, err := auth.NewIssuer(secret)
	if err != nil {
		return "", err
	}
	return is.Issue(user, device, ttl)
}
