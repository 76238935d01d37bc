package report

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/smtp"
	"strconv"
	"strings"
	"time"
)

// webhookPayload is the JSON body POSTed to report.webhook_url. Text makes
// it a valid message for Slack, Mattermost and Microsoft Teams incoming
// webhooks (they read "text" and ignore the other fields); tools that want
// data read the structured fields.
type webhookPayload struct {
	Text            string          `json:"text"`
	Date            string          `json:"date"`
	Health          Health          `json:"health"`
	Total           uint64          `json:"total"`
	ErrorRate       float64         `json:"error_rate"`
	NarrativeSource NarrativeSource `json:"narrative_source"`
	Summary         string          `json:"summary"`
	Findings        []string        `json:"findings"`
	Recommendations []string        `json:"recommendations"`
	Markdown        string          `json:"markdown"`
	Aggregates      json.RawMessage `json:"aggregates"`
}

// DeliveryError is a failed delivery on one channel ("webhook" or "smtp").
type DeliveryError struct {
	Channel string
	Err     error
}

func (e *DeliveryError) Error() string { return "deliver by " + e.Channel + ": " + e.Err.Error() }
func (e *DeliveryError) Unwrap() error { return e.Err }

// Deliver sends the report to every configured channel and returns the
// failures joined (each a *DeliveryError); one failing channel does not stop
// the others.
func (r *Reporter) Deliver(ctx context.Context, rep *Report) error {
	var errs []error
	if r.cfg.WebhookURL != "" {
		errs = append(errs, r.observeDelivery("webhook", r.postWebhook(ctx, rep)))
	}
	if r.cfg.SMTP.Host != "" {
		errs = append(errs, r.observeDelivery("smtp", r.sendMail(ctx, rep)))
	}
	return errors.Join(errs...)
}

func (r *Reporter) observeDelivery(channel string, err error) error {
	if err != nil {
		r.metrics.deliveries.WithLabelValues(channel, "error").Inc()
		return &DeliveryError{Channel: channel, Err: err}
	}
	r.metrics.deliveries.WithLabelValues(channel, "ok").Inc()
	return nil
}

func (r *Reporter) postWebhook(ctx context.Context, rep *Report) error {
	body, err := json.Marshal(webhookPayload{
		Text: webhookText(rep),
		Date: rep.Date.String(), Health: rep.Aggregates.Health, Total: rep.Aggregates.Totals.Requests,
		ErrorRate: rep.Aggregates.Totals.ErrorRate, NarrativeSource: rep.Source, Summary: rep.Narrative.Summary,
		Findings: rep.Narrative.Findings, Recommendations: rep.Narrative.Recommendations,
		Markdown: rep.Markdown, Aggregates: rep.AggregatesJSON,
	})
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.DeliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "smartlayer-reporter")
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// sendMail mails the report as multipart/alternative (Markdown text and
// HTML) through net/smtp, upgrading with STARTTLS when the server offers it.
func (r *Reporter) sendMail(ctx context.Context, rep *Report) error {
	cfg := r.cfg.SMTP
	ctx, cancel := context.WithTimeout(ctx, r.cfg.DeliveryTimeout)
	defer cancel()
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	c, err := smtp.NewClient(conn, cfg.Host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("greeting from %s: %w", addr, err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
	}
	if cfg.Username != "" {
		// PlainAuth refuses to send the password unencrypted except to localhost.
		if err := c.Auth(smtp.PlainAuth("", cfg.Username, string(cfg.Password), cfg.Host)); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	if err := c.Mail(cfg.From); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, to := range cfg.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("RCPT TO %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	msg, err := mailMessage(cfg, rep, r.now())
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	return c.Quit()
}

// mailMessage builds the RFC 5322 message. Headers carry only configured
// addresses, the date and the health: nothing from the logs.
func mailMessage(cfg SMTPConfig, rep *Report, now time.Time) ([]byte, error) {
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	boundary := "smartlayer-" + hex.EncodeToString(rnd[:])
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", cfg.From)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(cfg.To, ", "))
	fmt.Fprintf(&b, "Subject: smartlayer daily report %s: %s\r\n", rep.Date, rep.Aggregates.Health)
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=%q\r\n\r\n", boundary)
	for _, part := range []struct{ ctype, body string }{
		{"text/plain; charset=utf-8", rep.Markdown},
		{"text/html; charset=utf-8", rep.HTML},
	} {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary, part.ctype)
		qp := quotedprintable.NewWriter(&b)
		if _, err := qp.Write([]byte(part.body)); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes(), nil
}

// webhookText is the chat message: health and its reasons, fail-open when
// there was any, the summary, findings and recommendations, in the Markdown
// subset Slack, Mattermost and Teams all render (*bold*, "• " lists).
func webhookText(rep *Report) string {
	a, n := rep.Aggregates, rep.Narrative
	var b strings.Builder
	fmt.Fprintf(&b, "*smartlayer daily report %s: %s* — %s\n", a.Date, strings.ToUpper(string(a.Health)), strings.Join(a.HealthReasons, "; "))
	t := a.Totals
	fmt.Fprintf(&b, "%d requests · error rate %s · 5xx %s · p95 %s · blocked %d", t.Requests, pct(t.ErrorRate), pct(t.ServerErrorRate), ms(t.P95Ms), t.Blocked)
	if t.FailedOpen > 0 {
		fmt.Fprintf(&b, " · *%d passed unchecked (%s)*", t.FailedOpen, pct(t.FailOpenRatio))
	}
	b.WriteString("\n\n")
	b.WriteString(n.Summary)
	b.WriteString("\n")
	if len(n.Findings) > 0 {
		b.WriteString("\n*Findings*\n")
		for _, f := range n.Findings {
			b.WriteString("• " + f + "\n")
		}
	}
	if len(n.Recommendations) > 0 {
		b.WriteString("\n*Recommendations*\n")
		for i, r := range n.Recommendations {
			fmt.Fprintf(&b, "%d. %s\n", i+1, r)
		}
	}
	return chatEscape(strings.TrimRight(b.String(), "\n"))
}

// chatEscape neutralises Slack's control sequences (<!channel>, <url|x>)
// in text that comes from logs or the model: &, < and > as entities.
var chatEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace
