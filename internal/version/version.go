// Package version says which build is running (--version on both
// binaries, the startup log line).
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set at build time: go build -ldflags "-X
// github.com/smartlayer/smartlayer/internal/version.Version=v1.2.3" (the
// Makefile and Dockerfile pass `git describe`). Empty falls back to the
// module version Go recorded.
var Version = ""

// String is "<version> (<go version>)".
func String() string {
	v := Version
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	return fmt.Sprintf("%s (%s)", v, runtime.Version())
}
