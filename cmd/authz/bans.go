package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/smartlayer/smartlayer/internal/admin"
	"github.com/smartlayer/smartlayer/internal/scoring"
)

const bansUsage = `usage: authz bans list            [--admin URL] [--token T] [--json]
       authz bans add IP         [--reason R] [--ttl D] [--admin URL] [--token T]
       authz bans delete IP      [--admin URL] [--token T]

Talks to a running authz's admin API (/v1/bans). The token defaults to
$SMARTLAYER_SERVER_ADMIN_TOKEN; IP may be a network (CIDR) as listed.
`

// adminTokenEnv holds server.admin_token, as for the server itself.
const adminTokenEnv = "SMARTLAYER_SERVER_ADMIN_TOKEN"

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

// runBans implements `authz bans`. args are the arguments after "bans".
func runBans(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("bans", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, bansUsage, "\nflags:\n", fs.FlagUsages()) }
	adminURL := fs.String("admin", "http://127.0.0.1:9090", "admin API base URL")
	token := fs.String("token", "", "admin bearer token (default $"+adminTokenEnv+")")
	reason := fs.String("reason", "", "reason recorded with the ban (add)")
	ttl := fs.Duration("ttl", 0, "ban length, e.g. 30m or 24h (add; default behavior.ban_ttl)")
	asJSON := fs.Bool("json", false, "print the list as JSON (list)")
	timeout := fs.Duration("timeout", 10*time.Second, "request timeout")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if *token == "" {
		*token = os.Getenv(adminTokenEnv)
	}
	base, err := url.Parse(strings.TrimRight(*adminURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("%w: --admin must be an http(s) URL, got %q", errUsage, *adminURL)
	}
	pos := fs.Args()
	if len(pos) == 0 {
		fs.Usage()
		return fmt.Errorf("%w: missing command (list, add or delete)", errUsage)
	}
	want := map[string]int{"list": 1, "add": 2, "delete": 2}
	n, ok := want[pos[0]]
	if !ok {
		fs.Usage()
		return fmt.Errorf("%w: unknown command %q (list, add or delete)", errUsage, pos[0])
	}
	if len(pos) != n {
		fs.Usage()
		return fmt.Errorf("%w: %s takes %d argument(s), got %d", errUsage, pos[0], n-1, len(pos)-1)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := admin.NewClient(base.String(), *token, http.DefaultClient)
	switch pos[0] {
	case "list":
		bans, raw, err := c.List(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			_, err := stdout.Write(raw)
			return err
		}
		return printBans(stdout, bans, time.Now())
	case "add":
		req := admin.BanRequest{IP: pos[1], Reason: *reason}
		if *ttl != 0 {
			req.TTL = ttl.String()
		}
		ban, err := c.Add(ctx, req)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "banned %s until %s (%s)\n", ban.ClientKey, ban.Expires.UTC().Format(time.RFC3339), ban.Reason)
		return err
	default:
		if err := c.Delete(ctx, pos[1]); err != nil {
			return err
		}
		_, err := fmt.Fprintf(stdout, "unbanned %s\n", pos[1])
		return err
	}
}

func printBans(w io.Writer, bans []scoring.Ban, now time.Time) error {
	if len(bans) == 0 {
		_, err := fmt.Fprintln(w, "no active bans")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tREASON\tSCORE\tOFFENCE\tEXPIRES\tLEFT")
	for _, b := range bans {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", b.ClientKey, b.Reason, b.Score, b.Offence,
			b.Expires.UTC().Format(time.RFC3339), b.Expires.Sub(now).Round(time.Second))
	}
	return tw.Flush()
}
