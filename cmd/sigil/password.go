package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// keyPassword returns the password of a private key: $SIGIL_PASSWORD, else
// $COSIGN_PASSWORD (so scripts written for cosign work; set but empty means
// an empty password, as in cosign), else asked on the terminal, twice when
// confirm is set. It is never logged.
func keyPassword(stderr io.Writer, confirm bool) ([]byte, error) {
	for _, env := range []string{"SIGIL_PASSWORD", "COSIGN_PASSWORD"} {
		if pw, ok := os.LookupEnv(env); ok {
			return []byte(pw), nil
		}
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, errors.New("no password: set $SIGIL_PASSWORD (or $COSIGN_PASSWORD), or run on a terminal to be asked")
	}
	fmt.Fprint(stderr, "Enter password for private key: ")
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, fmt.Errorf("reading password: %w", err)
	}
	if confirm {
		fmt.Fprint(stderr, "Enter password for private key again: ")
		again, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, fmt.Errorf("reading password: %w", err)
		}
		if !bytes.Equal(pw, again) {
			return nil, errors.New("the passwords do not match")
		}
	}
	return pw, nil
}
