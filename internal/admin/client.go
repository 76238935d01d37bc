package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/smartlayer/smartlayer/internal/scoring"
)

// Client calls the ban API of a running authz (authz bans).
type Client struct {
	base, token string
	http        *http.Client
}

// NewClient talks to the admin API at base ("http://127.0.0.1:9090") with
// the admin token.
func NewClient(base, token string, hc *http.Client) *Client {
	return &Client{base: base, token: token, http: hc}
}

// APIError is an error answer of the admin API.
type APIError struct {
	Status int
	Body   ErrorBody
}

func (e *APIError) Error() string {
	msg := e.Body.Message
	if msg == "" {
		msg = e.Body.Error
	}
	return fmt.Sprintf("admin API: %d %s: %s", e.Status, http.StatusText(e.Status), msg)
}

func (c *Client) do(ctx context.Context, method, path string, body any, want int) ([]byte, error) {
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
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(raw, &e.Body) != nil || e.Body.Error == "" {
			e.Body.Message = strings.TrimSpace(string(raw))
		}
		return nil, e
	}
	return raw, nil
}

// List returns the active bans and the raw JSON answer.
func (c *Client) List(ctx context.Context) ([]scoring.Ban, []byte, error) {
	raw, err := c.do(ctx, http.MethodGet, "/v1/bans", nil, http.StatusOK)
	if err != nil {
		return nil, nil, err
	}
	var l BanList
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, nil, fmt.Errorf("admin API list: decode answer: %w", err)
	}
	return l.Bans, raw, nil
}

// Add bans r.IP.
func (c *Client) Add(ctx context.Context, r BanRequest) (scoring.Ban, error) {
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

// Delete lifts the ban on ip (an address or a network as listed).
func (c *Client) Delete(ctx context.Context, ip string) error {
	// The path keeps a network's slash: the server matches {ip...}.
	_, err := c.do(ctx, http.MethodDelete, "/v1/bans/"+url.PathEscape(ip), nil, http.StatusNoContent)
	return err
}
