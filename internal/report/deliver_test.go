package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpServer is a minimal SMTP server on loopback that records each
// message's envelope and DATA. reject makes it answer 550 to RCPT.
type smtpServer struct {
	ln     net.Listener
	reject bool
	auth   bool

	mu   sync.Mutex
	msgs []smtpMsg
	wg   sync.WaitGroup
}

type smtpMsg struct {
	from string
	to   []string
	auth string
	data []byte
}

func startSMTP(t *testing.T, reject, auth bool) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, reject: reject, auth: auth}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *smtpServer) hostPort(t *testing.T) (string, int) {
	host, port, _ := net.SplitHostPort(s.ln.Addr().String())
	p, _ := strconv.Atoi(port)
	return host, p
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	say := func(line string) { io.WriteString(c, line+"\r\n") }
	say("220 test ESMTP")
	var m smtpMsg
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		cmd := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			if s.auth {
				say("250-test")
				say("250 AUTH PLAIN")
			} else {
				say("250 test")
			}
		case strings.HasPrefix(cmd, "AUTH PLAIN"):
			m.auth = strings.TrimSpace(line[len("AUTH PLAIN"):])
			say("235 ok")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			m.from = strings.Trim(line[len("MAIL FROM:"):], "<> ")
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			if s.reject {
				say("550 no such user")
				continue
			}
			m.to = append(m.to, strings.Trim(line[len("RCPT TO:"):], "<> "))
			say("250 ok")
		case cmd == "DATA":
			say("354 go ahead")
			var data bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, ".")) // undo dot-stuffing
			}
			m.data = data.Bytes()
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			m = smtpMsg{}
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

func (s *smtpServer) messages() []smtpMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMsg(nil), s.msgs...)
}

// sampleReport builds a rendered report without ClickHouse.
func sampleReport(t *testing.T, r *Reporter) *Report {
	t.Helper()
	agg := &Aggregates{Date: "2026-11-20", Timezone: "UTC", Totals: Totals{Requests: 1000, Errors: 10, ErrorRate: 0.01, P95Ms: 50},
		SlowDrip: []SlowDripClient{{Client: "ip:192.0.2.13", DaysActive: 3, Requests: 9, MaxDaily: 3, SensitiveHits: 9, SensitivePaths: []string{injectionPath}}}}
	r.cfg.analyse(agg)
	rep, err := r.Build(t.Context(), scenarioDay, agg, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestDeliverWebhook(t *testing.T) {
	tests := map[string]struct {
		status  int
		wantErr bool
	}{
		"accepted": {http.StatusNoContent, false},
		"rejected": {http.StatusBadGateway, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var (
				got   webhookPayload
				ctype string
				calls int
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				calls++
				ctype = req.Header.Get("Content-Type")
				if req.Method != http.MethodPost || json.NewDecoder(req.Body).Decode(&got) != nil {
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			cfg := DefaultConfig()
			cfg.WebhookURL = srv.URL + "/hook"
			r, err := New(nopConn{}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			rep := sampleReport(t, r)
			err = r.Deliver(t.Context(), rep)
			var de *DeliveryError
			if tc.wantErr != (err != nil) || (err != nil && (!errors.As(err, &de) || de.Channel != "webhook")) {
				t.Fatalf("Deliver = %v, want error %v", err, tc.wantErr)
			}
			if calls != 1 || ctype != "application/json" {
				t.Fatalf("calls %d, content type %q", calls, ctype)
			}
			var agg Aggregates
			if got.Date != "2026-11-20" || got.Health != HealthGood || got.Total != 1000 || got.Markdown != rep.Markdown ||
				json.Unmarshal(got.Aggregates, &agg) != nil || agg.SlowDrip[0].SensitivePaths[0] != injectionPath {
				t.Errorf("payload = %+v", got)
			}
			// Slack, Mattermost and Teams incoming webhooks need "text".
			if !strings.HasPrefix(got.Text, "*smartlayer daily report 2026-11-20: GOOD*") ||
				!strings.Contains(got.Text, rep.Narrative.Summary) || !strings.Contains(got.Text, "*Recommendations*") {
				t.Errorf("text = %q", got.Text)
			}
		})
	}
}

func TestDeliverSMTP(t *testing.T) {
	tests := map[string]struct {
		reject, auth bool
		user         string
		wantErr      bool
	}{
		"plain":         {},
		"with auth":     {auth: true, user: "reporter"},
		"rcpt rejected": {reject: true, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := startSMTP(t, tc.reject, tc.auth)
			host, port := srv.hostPort(t)
			cfg := DefaultConfig()
			cfg.SMTP = SMTPConfig{Host: host, Port: port, From: "reports@example.test",
				To: []string{"ops@example.test", "sec@example.test"}, Username: tc.user, Password: "s3cret"}
			r, err := New(nopConn{}, cfg, WithClock(func() time.Time { return time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC) }))
			if err != nil {
				t.Fatal(err)
			}
			rep := sampleReport(t, r)
			err = r.Deliver(t.Context(), rep)
			if tc.wantErr {
				var de *DeliveryError
				if !errors.As(err, &de) || de.Channel != "smtp" {
					t.Fatalf("Deliver = %v, want an smtp DeliveryError", err)
				}
				if len(srv.messages()) != 0 {
					t.Errorf("a message was accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			msgs := srv.messages()
			if len(msgs) != 1 {
				t.Fatalf("got %d messages", len(msgs))
			}
			m := msgs[0]
			if m.from != "reports@example.test" || strings.Join(m.to, ",") != "ops@example.test,sec@example.test" {
				t.Errorf("envelope %s → %v", m.from, m.to)
			}
			if tc.auth && m.auth == "" {
				t.Errorf("no AUTH PLAIN sent")
			}
			text, html := parseMail(t, m.data)
			if text != rep.Markdown || html != rep.HTML {
				t.Errorf("mail parts differ from the report (text %d/%d bytes, html %d/%d)", len(text), len(rep.Markdown), len(html), len(rep.HTML))
			}
		})
	}
}

// parseMail returns the text and HTML parts of a multipart/alternative message.
func parseMail(t *testing.T, data []byte) (text, html string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if subj := msg.Header.Get("Subject"); subj != "smartlayer daily report 2026-11-20: good" {
		t.Errorf("subject %q", subj)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("content type %q: %v", mt, err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(quotedprintable.NewReader(p))
		if err != nil {
			t.Fatal(err)
		}
		// Mail lines end in CRLF; the report's in LF.
		body := bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
		switch {
		case strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain"):
			text = string(body)
		case strings.HasPrefix(p.Header.Get("Content-Type"), "text/html"):
			html = string(body)
		}
	}
	return text, html
}
