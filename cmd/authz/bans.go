package main

import (
	"context"
	"errors"
	"io"
)

// runBans is replaced by the ban administration client (behaviour issue).
func runBans(_ context.Context, _ []string, _, _ io.Writer) error {
	return errors.New("ban administration is not available in this build")
}
