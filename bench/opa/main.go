// Command opa-envoy is OPA with the Envoy ext_authz plugin, built from the
// Go module proxy for `make bench`'s reference row: the same program as
// the plugin's own cmd/opa-envoy-plugin. A module of its own, so OPA never
// enters smartlayer's go.mod or binaries.
package main

import (
	"os"

	"github.com/open-policy-agent/opa-envoy-plugin/plugin"
	"github.com/open-policy-agent/opa/cmd"
	"github.com/open-policy-agent/opa/v1/runtime"
)

func main() {
	runtime.RegisterPlugin(plugin.PluginName, plugin.Factory{})
	if err := cmd.RootCommand.Execute(); err != nil {
		os.Exit(1)
	}
}
