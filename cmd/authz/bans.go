package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	c := &banClient{base: base.String(), token: *token, http: http.DefaultClient}
	switch pos[0] {
	case "list":
		bans, raw, err := c.list(ctx)
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
		ban, err := c.add(ctx, req)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "banned %s until %s (%s)\n", ban.ClientKey, ban.Expires.UTC().Format(time.RFC3339), ban.Reason)
		return err
	default:
		if err := c.delete(ctx, pos[1]); err != nil {
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

// banClient calls the admin API.
type banClient struct {
	base, token string
	http        *http.Client
}

// apiError is an error answer of the admin API.
type apiError struct {
	Status int
	Body   admin.ErrorBody
}

func (e *apiError) Error() string {
	msg := e.Body.Message
	if msg == "" {
		msg = e.Body.Error
	}
	return fmt.Sprintf("admin API: %d %s: %s", e.Status, http.StatusText(e.Status), msg)
}

func (c *banClient) do(ctx context.Context, method, path string, body any, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("admin API request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("admin API %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		e := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(raw, &e.Body) != nil || e.Body.Error == "" {
			e.Body.Message = strings.TrimSpace(string(raw))
		}
		return nil, e
	}
	return raw, nil
}

func (c *banClient) list(ctx context.Context) ([]scoring.Ban, []byte, error) {
	raw, err := c.do(ctx, http.MethodGet, "/v1/bans", nil, http.StatusOK)
	if err != nil {
		return nil, nil, err
	}
	var l admin.BanList
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, nil, fmt.Errorf("admin API list: decode answer: %w", err)
	}
	return l.Bans, raw, nil
}

func (c *banClient) add(ctx context.Context, r admin.BanRequest) (scoring.Ban, error) {
	raw, err := c.do(ctx, http.MethodPost, "/v1/bans", r, http.StatusCreated)
	if err != nil {
		return scoring.Ban{}, err
	}
	var b scoring.Ban
	if err := json.Unmarshal(raw, &b); err != nil {
		return scoring.Ban{}, fmt.Errorf("admin API add: decode answer: %w", err)
	}
	return b, nil
}

func (c *banClient) delete(ctx context.Context, ip string) error {
	// The path keeps a network's slash: the server matches {ip...}.
	_, err := c.do(ctx, http.MethodDelete, "/v1/bans/"+url.PathEscape(ip), nil, http.StatusNoContent)
	return err
}
