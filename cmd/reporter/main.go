// Command reporter writes smartlayer's daily access-log report (the port of
// django-smart-layer's analyse_logs): aggregates from ClickHouse, an optional
// LLM narrative, Markdown/HTML files, a daily_reports row, webhook and mail
// delivery, then access_log retention. Run it once a day (CronJob).
//
// Exit status: 0 success; 1 the report failed or one of its outputs failed
// (the others were still attempted); 2 bad flags or configuration;
// 3 ClickHouse unreachable.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/spf13/pflag"

	"github.com/smartlayer/smartlayer/internal/accesslog"
	"github.com/smartlayer/smartlayer/internal/report"
	"github.com/smartlayer/smartlayer/internal/version"
)

const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitUnreachable = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type flags struct {
	config   string
	date     string
	timezone string
	out      string
	dryRun   bool
	noLLM    bool
	version  bool
}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := pflag.NewFlagSet("reporter", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "", "YAML configuration file (keys report.*, accesslog.clickhouse.*, llm.*; env SMARTLAYER_* overrides)")
	fs.StringVar(&f.date, "date", "", "day to report, YYYY-MM-DD (default: yesterday in the configured timezone)")
	fs.StringVar(&f.timezone, "timezone", "", "IANA timezone of the report's days (overrides report.timezone)")
	fs.StringVar(&f.out, "out", "", "directory for report-YYYY-MM-DD.md/.html (overrides report.out_dir)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the report and the partitions retention would drop; store, write, deliver and drop nothing")
	fs.BoolVar(&f.noLLM, "no-llm", false, "write the deterministic narrative even when llm.base_url is set")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return f, nil
}

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	f, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "reporter: %v\n", err)
		return exitUsage
	}
	if f.version {
		fmt.Fprintln(stdout, "smartlayer reporter", version.String())
		return exitOK
	}
	cfg, err := loadConfig(f.config)
	if err != nil {
		fmt.Fprintf(stderr, "reporter: %v\n", err)
		return exitUsage
	}
	if f.timezone != "" {
		loc, err := time.LoadLocation(f.timezone)
		if err != nil || f.timezone == "Local" {
			fmt.Fprintf(stderr, "reporter: --timezone %q is not an IANA timezone name\n", f.timezone)
			return exitUsage
		}
		cfg.Report.Location = loc
	}
	if f.out != "" {
		cfg.Report.OutDir = f.out
	}
	var day report.Date
	if f.date != "" {
		if day, err = report.ParseDate(f.date); err != nil {
			fmt.Fprintf(stderr, "reporter: --date: %v\n", err)
			return exitUsage
		}
	}

	conn, err := connect(ctx, cfg.ClickHouse)
	if err != nil {
		fmt.Fprintf(stderr, "reporter: %v\n", err)
		return exitUnreachable
	}
	defer conn.Close()
	if !f.dryRun {
		// The reporter may run before the ALS receiver ever created the tables.
		opts := append([]accesslog.SchemaOption{accesslog.WithRetentionDays(cfg.Report.RetentionDays)},
			cfg.ClickHouse.SchemaOptions(nodeDialer(cfg.ClickHouse))...)
		if err := accesslog.EnsureSchema(ctx, conn, cfg.Report.Database, opts...); err != nil {
			fmt.Fprintf(stderr, "reporter: %v\n", err)
			return exitFailed
		}
	}

	opts := []report.Option{report.WithLogger(log)}
	if cfg.ClickHouse.Cluster != "" {
		dial := nodeDialer(cfg.ClickHouse)
		opts = append(opts, report.WithNodeDialer(func(ctx context.Context, addr string) (report.NodeConn, error) {
			return dial(ctx, addr)
		}))
	}
	sum, closeSum, err := newSummarizer(cfg.LLM, log)
	if err != nil {
		fmt.Fprintf(stderr, "reporter: %v\n", err)
		return exitUsage
	}
	defer closeSum()
	if sum != nil {
		opts = append(opts, report.WithSummarizer(sum))
	}
	r, err := report.New(conn, cfg.Report, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "reporter: %v\n", err)
		return exitUsage
	}
	res, err := r.Run(ctx, report.RunOptions{Date: day, DryRun: f.dryRun, NoLLM: f.noLLM, Stdout: stdout})
	if res != nil {
		verb := "dropped"
		if f.dryRun {
			verb = "dry-run: would drop"
		}
		for _, p := range res.Dropped {
			fmt.Fprintf(stderr, "retention: %s access_log partition %s\n", verb, p.Date)
		}
		for _, path := range res.Files {
			fmt.Fprintf(stderr, "wrote %s\n", path)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "reporter: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// nodeDialer connects to one node of the cluster with c's credentials.
func nodeDialer(c accesslog.ClickHouseConfig) func(ctx context.Context, addr string) (driver.Conn, error) {
	return func(ctx context.Context, addr string) (driver.Conn, error) {
		node := c
		node.Addr = []string{addr}
		return connect(ctx, node)
	}
}

// connect opens the native-protocol connection (HTTP fails on 18.16) and
// pings, so an unreachable server is reported as such.
func connect(ctx context.Context, c accesslog.ClickHouseConfig) (driver.Conn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: c.Addr,
		// No default database: every query names it, and the ping must work
		// before EnsureSchema has created it.
		Auth:        clickhouse.Auth{Username: c.Username, Password: c.Password.Reveal()},
		DialTimeout: c.DialTimeout,
		ReadTimeout: 5 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse %v: %w", c.Addr, err)
	}
	pctx, cancel := context.WithTimeout(ctx, c.DialTimeout+5*time.Second)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse unreachable at %v: %w", c.Addr, err)
	}
	return conn, nil
}
