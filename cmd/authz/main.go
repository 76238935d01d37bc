// Command authz is smartlayer's Envoy external-authorization and access-log
// server.
//
//	authz [serve] [flags]          run the servers (default)
//	authz check-config [flags]     validate the configuration and exit
//	authz bans list|add|delete     administer bans through the admin API
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/smartlayer/smartlayer/internal/app"
	"github.com/smartlayer/smartlayer/internal/config"
	"github.com/smartlayer/smartlayer/internal/logging"
	"github.com/smartlayer/smartlayer/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: authz [serve|check-config|bans|explain|version] [flags]

  serve          run the ext_authz, access-log and admin servers (default)
  check-config   load and validate the configuration, print it, exit
  bans           list, add or delete bans through the admin API (authz bans -h)
  explain        decide one request (curl-like flags or a CheckRequest JSON) and print every signal
  version        print the version (also --version)

authz <command> -h lists the command's flags.
`

// run executes one subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	if len(args) > 0 && cmd == "serve" && (args[0] == "--version" || args[0] == "-version") {
		cmd = "version"
	}
	if len(args) > 0 && cmd == "serve" && (args[0] == "--help" || args[0] == "-h") {
		cmd = "help"
	}
	// Tools run on their own; their errors read "authz <command>: ...".
	tools := map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
		"explain": runExplain,
		"bans":    runBans,
	}
	if tool, ok := tools[cmd]; ok {
		if err := tool(ctx, args, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "authz %s: %v\n", cmd, err)
			return 1
		}
		return 0
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, "smartlayer authz", version.String())
		return 0
	case "serve", "check-config":
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "authz: unknown command %q\n%s", cmd, usage)
		return 2
	}

	src, err := parseFlags(cmd, args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "authz:", err)
		return 2
	}
	// One validation path: config.Load runs every module's Validate, the
	// same call serve and a hot reload make.
	cfg, err := config.Load(src)
	if err != nil {
		fmt.Fprintf(stderr, "authz: invalid configuration:\n%v\n", err)
		return 1
	}
	if cmd == "check-config" {
		for _, n := range cfg.Notices {
			fmt.Fprintln(stdout, "warning:", n)
		}
		fmt.Fprintf(stdout, "configuration OK (file %q, store %s, llm %v, clickhouse %v)\n",
			src.File, cfg.Store.Backend, cfg.LLM.BaseURL != "", cfg.AccessLog.ClickHouse.Addr)
		return 0
	}
	logger := logging.New(cfg.Log, stderr)
	if err := app.Run(ctx, cfg, src, logger); err != nil {
		logger.Error("authz stopped with an error", "err", err)
		return 1
	}
	return 0
}

// flagKeys maps command-line flags to configuration keys. Flags beat the
// file and the environment.
var flagKeys = []struct{ flag, key, help string }{
	{"authz-addr", "server.authz_addr", "ext_authz gRPC listen address"},
	{"als-addr", "server.als_addr", "access-log (ALS) gRPC listen address"},
	{"admin-addr", "server.admin_addr", "admin HTTP listen address"},
	{"store", "store.backend", "state store: memory or redis"},
	{"redis-addr", "store.redis.addrs", "Redis address(es), comma-separated: one Redis, Cluster seeds, or Sentinels with store.redis.master_name"},
	{"log-level", "log.level", "debug, info, warn or error"},
}

func parseFlags(cmd string, args []string, stderr io.Writer) (config.Source, error) {
	fs := pflag.NewFlagSet("authz "+cmd, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.StringP("config", "c", "", "YAML configuration file (also SMARTLAYER_CONFIG)")
	values := make([]*string, len(flagKeys))
	for i, f := range flagKeys {
		values[i] = fs.String(f.flag, "", f.help+" ("+f.key+")")
	}
	if err := fs.Parse(args); err != nil {
		return config.Source{}, err
	}
	if fs.NArg() > 0 {
		return config.Source{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	src := config.Source{File: *file, Flags: map[string]any{}}
	if src.File == "" {
		src.File = os.Getenv("SMARTLAYER_CONFIG")
	}
	for i, f := range flagKeys {
		if fs.Changed(f.flag) {
			src.Flags[f.key] = *values[i]
		}
	}
	return src, nil
}
