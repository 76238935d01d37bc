package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Validate reports every problem at once, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, v any, msg string) {
		errs = append(errs, &KeyError{Key: key, Value: v, Msg: msg})
	}
	addr := func(key, v string, required bool) {
		if v == "" {
			if required {
				bad(key, nil, "must be set (host:port)")
			}
			return
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			bad(key, v, "must be host:port")
		}
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, d, "must be > 0")
		}
	}
	oneOf := func(key, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad(key, v, "must be one of "+strings.Join(allowed, ", "))
	}

	s := c.Server
	addr("server.authz_addr", s.AuthzAddr, true)
	addr("server.als_addr", s.ALSAddr, false)
	addr("server.admin_addr", s.AdminAddr, false)
	positive("server.decision_budget", s.DecisionBudget)
	positive("server.shutdown_timeout", s.ShutdownTimeout)
	oneOf("server.fail_mode", string(s.FailMode), string(FailAllow), string(FailDeny))
	if s.MaxRecvMsgBytes < 64<<10 {
		bad("server.max_recv_msg_bytes", s.MaxRecvMsgBytes, "must be ≥ 65536")
	}
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		bad("server.tls", nil, "cert_file and key_file must be set together")
	}
	if s.TLS.ClientCAFile != "" && s.TLS.CertFile == "" {
		bad("server.tls.client_ca_file", s.TLS.ClientCAFile, "needs cert_file and key_file")
	}

	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf("log.format", c.Log.Format, "text", "json")

	id := c.Identity
	oneOf("identity.client_ip.source", id.ClientIP.Source, "xff", "peer")
	if id.ClientIP.TrustedHops < 0 {
		bad("identity.client_ip.trusted_hops", id.ClientIP.TrustedHops, "must be ≥ 0")
	}
	if id.AnonymousPlan == "" {
		bad("identity.anonymous_plan", nil, "must be set")
	}
	for key, h := range map[string]string{"identity.user_header": id.UserHeader, "identity.plan_header": id.PlanHeader} {
		if h != strings.ToLower(h) || strings.ContainsAny(h, " :") {
			bad(key, h, "must be a lowercase header name")
		}
	}

	oneOf("store.backend", string(c.Store.Backend), string(BackendMemory), string(BackendRedis))
	if c.Store.Backend == BackendRedis {
		addr("store.redis.addr", c.Store.Redis.Addr, true)
	}
	positive("store.redis.timeout", c.Store.Redis.Timeout)
	if c.Store.Memory.MaxTrackedClients < 1 {
		bad("store.memory.max_tracked_clients", c.Store.Memory.MaxTrackedClients, "must be ≥ 1")
	}

	b := c.Behavior
	mode := func(key string, m Mode) {
		if !m.valid() {
			bad(key, m, "must be one of enforce, shadow, off")
		}
	}
	mode("behavior.mode", b.Mode)
	// The thresholds are validated by internal/scoring, which names each
	// behavior.* key; cmd/authz runs that check before serving.
	cidrs := func(key string, list []string) {
		for i, s := range list {
			if _, err := ParsePrefix(s); err != nil {
				bad(fmt.Sprintf("%s[%d]", key, i), s, "must be a CIDR or an IP address")
			}
		}
	}
	cidrs("behavior.allow_cidrs", b.AllowCIDRs)
	cidrs("behavior.deny_cidrs", b.DenyCIDRs)
	unit := func(key string, v float64) {
		if v < 0 || v > 1 {
			bad(key, v, "must be between 0 and 1")
		}
	}

	p := c.Payload
	mode("payload.mode", p.Mode)
	if p.BlockScore < 1 {
		bad("payload.block_score", p.BlockScore, "must be ≥ 1")
	}
	if p.MaxBodyBytes < 0 {
		bad("payload.max_body_bytes", p.MaxBodyBytes, "must be ≥ 0")
	}
	oneOf("payload.llm_mode", string(p.LLMMode), string(LLMAsync), string(LLMSync), string(LLMOff))
	unit("payload.min_confidence", p.MinConfidence)

	mode("quota.mode", c.Quota.Mode)

	l := c.LLM
	if l.BaseURL != "" {
		if u, err := url.Parse(l.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("llm.base_url", l.BaseURL, "must be an http(s) URL")
		}
		if l.Model == "" {
			bad("llm.model", nil, "must be set when llm.base_url is")
		}
	}
	positive("llm.timeout", l.Timeout)
	if l.MaxConcurrency < 1 {
		bad("llm.max_concurrency", l.MaxConcurrency, "must be ≥ 1")
	}
	if l.QueueSize < 1 {
		bad("llm.queue_size", l.QueueSize, "must be ≥ 1")
	}
	oneOf("llm.output", l.Output, "json_schema", "text")

	a := c.AccessLog
	for i, h := range a.ClickHouse.Addr {
		addr(fmt.Sprintf("accesslog.clickhouse.addr[%d]", i), h, true)
	}
	if a.ClickHouse.Database == "" || strings.ContainsAny(a.ClickHouse.Database, "`.; ") {
		bad("accesslog.clickhouse.database", a.ClickHouse.Database, "must be a plain identifier")
	}
	if a.BatchRows < 1 {
		bad("accesslog.batch_rows", a.BatchRows, "must be ≥ 1")
	}
	positive("accesslog.flush_interval", a.FlushInterval)
	if a.SpoolMaxBytes < 0 {
		bad("accesslog.spool_max_bytes", a.SpoolMaxBytes, "must be ≥ 0")
	}
	oneOf("accesslog.store_client_ip", a.StoreClientIP, "anonymous", "always", "never")

	r := c.Report
	if r.RetentionDays < 0 {
		bad("report.retention_days", r.RetentionDays, "must be ≥ 0 (0 keeps everything)")
	}
	if _, err := time.LoadLocation(r.Timezone); err != nil {
		bad("report.timezone", r.Timezone, "must be an IANA time zone")
	}
	if r.WebhookURL != "" {
		if u, err := url.Parse(r.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			bad("report.webhook_url", r.WebhookURL, "must be an http(s) URL")
		}
	}
	// The rest of report.* is validated by internal/report, which names
	// each key; the reporter runs that check before connecting.
	return errors.Join(errs...)
}

// ParsePrefix accepts a CIDR or a bare address (as a /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
