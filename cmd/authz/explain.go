package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/smartlayer/smartlayer/internal/app"
	"github.com/smartlayer/smartlayer/internal/config"
)

// runExplain implements `authz explain`: one request, curl-like or as a
// CheckRequest in JSON, decided as serve would and every signal printed.
func runExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("explain", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.StringP("config", "c", os.Getenv("SMARTLAYER_CONFIG"), "YAML configuration file")
	var c app.CurlRequest
	fs.StringVarP(&c.Method, "request", "X", "", "method (default GET, POST with --data)")
	fs.StringArrayVarP(&c.Headers, "header", "H", nil, `header "Name: value" (repeatable)`)
	fs.StringVarP(&c.Body, "data", "d", "", "request body")
	fs.StringVar(&c.Client, "client", "", "client IP as the edge Envoy sees it")
	claims := fs.String("claims", "", `verified JWT claims as JSON, e.g. '{"sub":"u1","plan":"free"}'`)
	checkFile := fs.String("check-request", "", "a CheckRequest in JSON (protojson) instead of a URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(config.Source{File: *file})
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	var req *authv3.CheckRequest
	switch {
	case *checkFile != "":
		b, err := os.ReadFile(*checkFile)
		if err != nil {
			return err
		}
		req = &authv3.CheckRequest{}
		if err := protojson.Unmarshal(b, req); err != nil {
			return fmt.Errorf("%s: %w", *checkFile, err)
		}
	case fs.NArg() == 1:
		if *claims != "" {
			if err := json.Unmarshal([]byte(*claims), &c.Claims); err != nil {
				return fmt.Errorf("--claims: %w", err)
			}
		}
		c.URL = fs.Arg(0)
		if req, err = c.CheckRequest(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: explain takes one URL or --check-request FILE", errUsage)
	}
	return app.Explain(ctx, cfg, req, stdout)
}
