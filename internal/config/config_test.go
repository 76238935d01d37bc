package config

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/scoring/payload"
	"github.com/smartlayer/smartlayer/internal/store"
	"github.com/smartlayer/smartlayer/internal/testenv"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	return testenv.WriteFile(t, "smartlayer.yaml", body)
}

func environ(kv ...string) func() []string { return func() []string { return kv } }

// loadFrom loads a YAML body (none when empty) with the given environment.
func loadFrom(t *testing.T, yaml string, env []string) (Config, error) {
	t.Helper()
	src := Source{Environ: environ(env...)}
	if yaml != "" {
		src.File = writeFile(t, yaml)
	}
	return Load(src)
}

func TestLoadLayers(t *testing.T) {
	file := writeFile(t, `
server: {authz_addr: ":7001", decision_budget: 20ms}
store: {backend: redis, redis: {addr: "10.0.0.1:6379"}}
behavior: {deny_cidrs: [192.0.2.0/24]}
quota:
  plans:
    free: {"/api/generate/": {per_minute: 2, lifetime: 1000}, "/api/v1.2/x": {per_day: 5}}
`)
	c, err := Load(Source{
		File:    file,
		Environ: environ("SMARTLAYER_SERVER_ADMIN_ADDR=:7090", "SMARTLAYER_STORE_REDIS_ADDRS=127.0.0.1:6380", "SMARTLAYER_LLM_API_KEY=sk-secret", "SMARTLAYER_BEHAVIOR_ALLOW_CIDRS=10.0.0.0/8, 127.0.0.1", "HOME=/root"),
		Flags:   map[string]any{"server.authz_addr": ":8001"},
	})
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]struct{ got, want any }{
		"flag beats file":         {c.Server.AuthzAddr, ":8001"},
		"file beats default":      {c.Server.DecisionBudget, 20 * time.Millisecond},
		"env with underscore key": {c.Server.AdminAddr, ":7090"},
		"env beats file":          {strings.Join(c.Store.Redis.Addrs, "|"), "127.0.0.1:6380"},
		"file enum":               {c.Store.Backend, store.BackendRedis},
		"default kept":            {c.Server.ALSAddr, ":9002"},
		"secret from env":         {string(c.LLM.APIKey), "sk-secret"},
		"secret redacted":         {c.LLM.APIKey.String(), "[REDACTED]"},
		"env list":                {strings.Join(c.Behavior.AllowCIDRs, "|"), "10.0.0.0/8|127.0.0.1"},
		"file list":               {strings.Join(c.Behavior.DenyCIDRs, "|"), "192.0.2.0/24"},
		"plan limit":              {c.Quota.Plans["free"]["/api/generate/"]["per_minute"], int64(2)},
		"route key with a dot":    {c.Quota.Plans["free"]["/api/v1.2/x"]["per_day"], int64(5)},
	}
	for name, tc := range checks {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", name, tc.got, tc.want)
		}
	}
}

func TestDefaultsAreValid(t *testing.T) {
	c, err := Load(Source{Environ: environ()})
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if c.Store.Backend != store.BackendMemory || len(c.AccessLog.ClickHouse.Addr) != 0 || c.LLM.BaseURL != "" {
		t.Fatalf("defaults must need no Redis, ClickHouse or LLM: %+v", c)
	}
}

func TestLoadErrorsNameTheKey(t *testing.T) {
	tests := map[string]struct {
		yaml string
		env  []string
		want []string
	}{
		"bad enum":           {yaml: "server: {fail_mode: maybe}", want: []string{"server.fail_mode", "maybe"}},
		"misspelt key":       {yaml: "server: {authz_adr: ':1'}", want: []string{"authz_adr"}},
		"bad duration":       {yaml: "server: {decision_budget: soon}", want: []string{"decision_budget"}},
		"negative budget":    {yaml: "server: {decision_budget: -1s}", want: []string{"server.decision_budget"}},
		"bad cidr":           {yaml: "behavior: {deny_cidrs: [10.0.0.0/33]}", want: []string{"behavior.deny_cidrs[0]", "10.0.0.0/33"}},
		"bad address":        {yaml: "server: {authz_addr: nowhere}", want: []string{"server.authz_addr", "nowhere"}},
		"redis without addr": {yaml: "store: {backend: redis, redis: {addrs: []}}", want: []string{"store.redis.addrs"}},
		"redis bad addr":     {yaml: "store: {backend: redis, redis: {addrs: [a:1, nope]}}", want: []string{"store.redis.addrs[1]"}},
		"redis cluster db":   {yaml: "store: {backend: redis, redis: {addrs: [a:1, b:2], db: 3}}", want: []string{"store.redis.db"}},
		"redis tls half":     {yaml: "store: {redis: {tls: {enabled: true, cert_file: /x.pem}}}", want: []string{"store.redis.tls"}},
		"redis tls off":      {yaml: "store: {redis: {tls: {ca_file: /ca.pem}}}", want: []string{"store.redis.tls.enabled"}},
		"llm without model":  {yaml: "llm: {base_url: 'http://127.0.0.1:1/v1'}", want: []string{"llm.model"}},
		"bad timezone":       {yaml: "report: {timezone: Mars/Olympus}", want: []string{"report.timezone"}},
		"two errors at once": {yaml: "payload: {mode: loud, block_score: 0}",
			want: []string{"payload.mode", "payload.block_score"}},
		"unknown env var": {env: []string{"SMARTLAYER_SERVER_AUTHZADDR=:1"}, want: []string{"SMARTLAYER_SERVER_AUTHZADDR"}},
		"bad env value":   {env: []string{"SMARTLAYER_SERVER_DECISION_BUDGET=fast"}, want: []string{"decision_budget", "SMARTLAYER_SERVER_DECISION_BUDGET"}},
		"not yaml":        {yaml: "server: [", want: []string{"smartlayer.yaml"}},
		"bare number duration": {yaml: "server: {decision_budget: 50}",
			want: []string{"decision_budget", "needs a unit", "50ms"}},
		"module rule":        {yaml: "behavior: {rate_block: 10, rate_suspect: 20}", want: []string{"behavior.rate_suspect"}},
		"quota plan shape":   {yaml: "quota: {plans: {free: {/x: {per_fortnight: 1}}}}", want: []string{"quota.plans.free"}},
		"quota memory":       {yaml: "quota: {memory: {max_keys: 0}}", want: []string{"quota.memory.max_keys"}},
		"empty anon plan":    {yaml: "identity: {anonymous_plan: ''}", want: []string{"identity.anonymous_plan"}},
		"bad header name":    {yaml: "identity: {user_header: X-User}", want: []string{"identity.user_header"}},
		"llm bad retries":    {yaml: "llm: {base_url: 'http://127.0.0.1:1/v1', model: m, max_retries: -1}", want: []string{"llm.max_retries"}},
		"accesslog database": {yaml: "accesslog: {clickhouse: {database: 'a;b'}}", want: []string{"accesslog.clickhouse.database"}},
		"report top_n":       {yaml: "report: {top_n: 0}", want: []string{"report.top_n"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := loadFrom(t, tc.yaml, tc.env)
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestDeprecatedKeysLoadWithANotice(t *testing.T) {
	file := writeFile(t, `
report: {sensitive_paths: [/secret], narrative_timeout: 90s}
llm: {narrative_timeout: 10s}
`)
	c, err := Load(Source{File: file, Environ: environ()})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Behavior.SensitivePaths, ","); got != "/secret" {
		t.Errorf("report.sensitive_paths did not reach behavior.sensitive_paths: %q", got)
	}
	if got := strings.Join(c.Report.SensitivePrefixes, ","); got != "/secret" {
		t.Errorf("the report does not use behavior.sensitive_paths: %q", got)
	}
	// The replacement, set explicitly, wins over the deprecated key.
	if c.Report.NarrativeTimeout != 90*time.Second {
		t.Errorf("narrative timeout: report %v; want 90s", c.Report.NarrativeTimeout)
	}
	notices := strings.Join(c.Notices, "\n")
	for _, want := range []string{"report.sensitive_paths is deprecated: use behavior.sensitive_paths",
		"llm.narrative_timeout is deprecated: use report.narrative_timeout"} {
		if !strings.Contains(notices, want) {
			t.Errorf("notices %q lack %q", notices, want)
		}
	}
	// The environment spelling of a deprecated key works too.
	c, err = Load(Source{Environ: environ("SMARTLAYER_LLM_NARRATIVE_TIMEOUT=5s")})
	if err != nil || c.Report.NarrativeTimeout != 5*time.Second || len(c.Notices) != 1 {
		t.Errorf("env deprecated key: %v, %v, %q", err, c.Report.NarrativeTimeout, c.Notices)
	}
}

// store.redis.addr, a single address, became the list store.redis.addrs:
// the old key still loads from the file and the environment, and the
// --redis-addr flag takes a comma-separated list.
func TestRedisAddrBecameAddrs(t *testing.T) {
	for name, src := range map[string]Source{
		"file": {File: writeFile(t, "store: {backend: redis, redis: {addr: 'r1:6379'}}\n"), Environ: environ()},
		"env":  {Environ: environ("SMARTLAYER_STORE_BACKEND=redis", "SMARTLAYER_STORE_REDIS_ADDR=r1:6379")},
	} {
		c, err := Load(src)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := strings.Join(c.Store.Redis.Addrs, "|"); got != "r1:6379" || len(c.Notices) != 1 ||
			!strings.Contains(c.Notices[0], "store.redis.addr is deprecated: use store.redis.addrs") {
			t.Errorf("%s: addrs %q, notices %q", name, got, c.Notices)
		}
	}
	c, err := Load(Source{Environ: environ(), Flags: map[string]any{"store.redis.addrs": "a:1, b:2,c:3"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Store.Redis.Addrs, "|"); got != "a:1|b:2|c:3" || c.Store.Redis.Topology() != "cluster" {
		t.Errorf("flag list: %q (%s)", got, c.Store.Redis.Topology())
	}
}

// TestRemovedLLMKeys: the client's own timeout, concurrency, queue and
// cache keys still load, doing nothing, with a notice naming what to set
// instead — both uses' keys where the job is now done per use.
func TestRemovedLLMKeys(t *testing.T) {
	tests := map[string]struct {
		yaml, env string
		want      string
	}{
		"timeout": {yaml: "llm: {timeout: 9s}",
			want: "llm.timeout is deprecated and no longer used: set behavior.llm.timeout and payload.llm.timeout"},
		"timeout from the environment": {env: "SMARTLAYER_LLM_TIMEOUT=9s",
			want: "llm.timeout is deprecated and no longer used: set behavior.llm.timeout and payload.llm.timeout"},
		"max_concurrency": {yaml: "llm: {max_concurrency: 9}",
			want: "llm.max_concurrency is deprecated and no longer used: set behavior.llm.workers and payload.llm.workers"},
		"queue_size": {yaml: "llm: {queue_size: 9}",
			want: "llm.queue_size is deprecated and no longer used; remove it"},
		"cache_ttl": {yaml: "llm: {cache_ttl: 9m}",
			want: "llm.cache_ttl is deprecated and no longer used: set behavior.llm.cache_ttl and payload.llm.cache_ttl"},
		"cache_size": {yaml: "llm: {cache_size: 9}",
			want: "llm.cache_size is deprecated and no longer used: set behavior.llm.cache_size and payload.llm.cache_size"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			src := Source{Environ: environ()}
			if tc.env != "" {
				src.Environ = environ(tc.env)
			}
			if tc.yaml != "" {
				src.File = writeFile(t, tc.yaml)
			}
			c, err := Load(src)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Notices) != 1 || c.Notices[0] != tc.want {
				t.Errorf("notices %q, want [%q]", c.Notices, tc.want)
			}
			// Nothing moved: both uses keep their defaults.
			def := Default()
			if c.Behavior.LLM != def.Behavior.LLM || c.Payload.LLM != def.Payload.LLM || c.LLM != def.LLM {
				t.Errorf("a removed key changed the configuration: %+v %+v %+v", c.Behavior.LLM, c.Payload.LLM, c.LLM)
			}
		})
	}
}

// TestDeprecatedPayloadKeys: the flat payload LLM keys load into
// payload.llm.*, from the file and the environment, each with a notice.
func TestDeprecatedPayloadKeys(t *testing.T) {
	tests := map[string]struct {
		yaml    string
		env     []string
		check   func(c Config) bool
		notices []string
	}{
		"every flat key": {
			yaml: `payload: {llm_mode: sync, min_confidence: 0.9, llm_max_excerpt: 512, llm_queue_size: 8,
  llm_workers: 3, llm_timeout: 2s, verdict_cache_size: 50, verdict_ttl: 1h}`,
			check: func(c Config) bool {
				return c.Payload.LLM == payload.LLMConfig{Mode: payload.LLMSync, MinConfidence: 0.9, MaxExcerpt: 512,
					QueueSize: 8, Workers: 3, Timeout: 2 * time.Second, CacheSize: 50, CacheTTL: time.Hour}
			},
			notices: []string{"payload.llm_mode is deprecated: use payload.llm.mode",
				"payload.min_confidence is deprecated: use payload.llm.min_confidence",
				"payload.llm_max_excerpt is deprecated: use payload.llm.max_excerpt",
				"payload.llm_queue_size is deprecated: use payload.llm.queue_size",
				"payload.llm_workers is deprecated: use payload.llm.workers",
				"payload.llm_timeout is deprecated: use payload.llm.timeout",
				"payload.verdict_cache_size is deprecated: use payload.llm.cache_size",
				"payload.verdict_ttl is deprecated: use payload.llm.cache_ttl"},
		},
		"the new key wins": {
			yaml:    "payload: {verdict_ttl: 1h, llm: {cache_ttl: 2h}}",
			check:   func(c Config) bool { return c.Payload.LLM.CacheTTL == 2*time.Hour },
			notices: []string{"payload.verdict_ttl is deprecated: use payload.llm.cache_ttl"},
		},
		"old environment names": {
			env: []string{"SMARTLAYER_PAYLOAD_VERDICT_TTL=3h", "SMARTLAYER_PAYLOAD_MIN_CONFIDENCE=0.7"},
			check: func(c Config) bool {
				return c.Payload.LLM.CacheTTL == 3*time.Hour && c.Payload.LLM.MinConfidence == 0.7
			},
			notices: []string{"payload.verdict_ttl is deprecated", "payload.min_confidence is deprecated"},
		},
		// SMARTLAYER_PAYLOAD_LLM_MODE spells payload.llm_mode and
		// payload.llm.mode alike: it sets the new key, without a notice.
		"shared environment names": {
			env: []string{"SMARTLAYER_PAYLOAD_LLM_MODE=off", "SMARTLAYER_PAYLOAD_LLM_TIMEOUT=1s"},
			check: func(c Config) bool {
				return c.Payload.LLM.Mode == payload.LLMOff && c.Payload.LLM.Timeout == time.Second
			},
		},
		"an old key's bad value names the new key": {
			yaml: "payload: {llm_workers: 0}",
			// checked below: Load fails
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := loadFrom(t, tc.yaml, tc.env)
			if tc.check == nil {
				if err == nil || !strings.Contains(err.Error(), "payload.llm.workers") {
					t.Fatalf("Load = %v, want an error naming payload.llm.workers", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("payload.llm = %+v", c.Payload.LLM)
			}
			if len(c.Notices) != len(tc.notices) {
				t.Errorf("notices %q, want %d", c.Notices, len(tc.notices))
			}
			all := strings.Join(c.Notices, "\n")
			for _, want := range tc.notices {
				if !strings.Contains(all, want) {
					t.Errorf("notices %q lack %q", c.Notices, want)
				}
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	if _, err := Load(Source{File: "/nonexistent/smartlayer.yaml", Environ: environ()}); err == nil ||
		!strings.Contains(err.Error(), "/nonexistent/smartlayer.yaml") {
		t.Fatalf("want an error naming the file, got %v", err)
	}
}

func TestWatchKeepsLastGood(t *testing.T) {
	file := writeFile(t, "server: {decision_budget: 20ms}")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Config, 4)
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, Source{File: file, Environ: environ()}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, func(c Config) { got <- c })
	}()
	time.Sleep(200 * time.Millisecond) // let the watcher register

	// A broken file is rejected: apply is not called.
	if err := os.WriteFile(file, []byte("server: {decision_budget: never}"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-got:
		t.Fatalf("invalid file applied: %+v", c.Server)
	case <-time.After(500 * time.Millisecond):
	}
	// A valid one is applied.
	if err := os.WriteFile(file, []byte("server: {decision_budget: 30ms}"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-got:
		if c.Server.DecisionBudget != 30*time.Millisecond {
			t.Fatalf("reloaded budget = %v", c.Server.DecisionBudget)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("valid change not applied")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"server: {authz_addr: ':9001'}",
		"quota: {plans: {free: {/x: {per_minute: 1}}}}",
		"behavior: {allow_cidrs: [10.0.0.0/8]}",
		"server: [",
		"llm: {base_url: 'http://x/v1', model: m}",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string) {
		if len(body) > 4096 {
			return
		}
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(Source{File: p, Environ: environ()})
		if err == nil {
			// Whatever loads must also validate: Load never hands out an
			// invalid configuration.
			if verr := c.Validate(); verr != nil {
				t.Fatalf("loaded config does not validate: %v", verr)
			}
		}
	})
}

// A log file next to the config, or the same content written again, is
// no reload; a bad edit is rejected (and logged) once, not in a loop.
func TestWatchReactsOnlyToContentChanges(t *testing.T) {
	file := writeFile(t, "server: {decision_budget: 20ms}")
	neighbour := filepath.Join(filepath.Dir(file), "authz.log")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := prometheus.NewRegistry()
	var logs testenv.Buffer
	got := make(chan Config, 16)
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, Source{File: file, Environ: environ()}, slog.New(slog.NewTextHandler(&logs, nil)), reg,
			func(c Config) { got <- c })
	}()
	time.Sleep(500 * time.Millisecond) // let the watcher register (slow on a loaded machine)

	for i := range 20 { // a busy log file
		if err := os.WriteFile(neighbour, []byte(strings.Repeat("x", i)), 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.WriteFile(file, []byte("server: {decision_budget: 20ms}"), 0o600); err != nil { // same content
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("server: {decision_budget: 50}"), 0o600); err != nil { // bad edit
		t.Fatal(err)
	}
	// Wait for the rejection (the debounce is 100 ms; a loaded machine is
	// slower), then make more neighbour noise.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "config reload rejected") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	for range 5 { // neighbour noise after the bad edit
		_ = os.WriteFile(neighbour, []byte("y"), 0o600)
		time.Sleep(150 * time.Millisecond)
	}
	select {
	case c := <-got:
		t.Fatalf("reload applied without a valid content change: %+v", c.Server)
	default:
	}
	if n := strings.Count(logs.String(), "config reload rejected"); n != 1 {
		t.Errorf("bad edit logged %d times, want once:\n%s", n, logs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"rejected": 1}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			result := m.GetLabel()[0].GetValue()
			if m.GetCounter().GetValue() != want[result] {
				t.Errorf("reloads{result=%s} = %v, want %v", result, m.GetCounter().GetValue(), want[result])
			}
		}
	}
}

// Every duration has a sane minimum: a value that would disarm a module
// (a 1ns decision budget allows everything, a 1ns window counts nothing)
// is an error naming its key.
func TestEveryDurationHasAMinimum(t *testing.T) {
	k := defaultsKoanf(t)
	// Durations where zero is a meaningful setting.
	zeroOK := map[string]bool{"behavior.offence_memory": true, "server.drain_delay": true}
	for _, key := range k.Keys() {
		v, ok := k.Get(key).(string)
		if !ok {
			continue
		}
		if _, err := time.ParseDuration(v); err != nil || zeroOK[key] {
			continue
		}
		t.Run(key, func(t *testing.T) {
			section, _, _ := strings.Cut(key, ".")
			flags := map[string]any{key: "1ns"}
			if section == "llm" { // llm.* is checked once an LLM is configured
				flags["llm.base_url"], flags["llm.model"] = "http://127.0.0.1:1/v1", "m"
			}
			_, err := Load(Source{Environ: environ(), Flags: flags})
			if err == nil || !strings.Contains(err.Error(), key) {
				t.Errorf("%s: 1ns loads (err %v); want an error naming the key (section %s)", key, err, section)
			}
		})
	}
}

// defaultsKoanf is the built-in configuration as koanf keys.
func defaultsKoanf(t *testing.T) *koanf.Koanf {
	t.Helper()
	def, err := defaultsMap()
	if err != nil {
		t.Fatal(err)
	}
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(def, "."), nil); err != nil {
		t.Fatal(err)
	}
	return k
}
