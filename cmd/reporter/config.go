package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // report.timezone must resolve in minimal containers too

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/smartlayer/smartlayer/internal/report"
)

// appConfig is what the reporter binary needs: the report package's Config
// plus the connections only cmd/ builds. It is the one value loadConfig
// returns, so the lead can swap the loader for internal/config in one place.
type appConfig struct {
	Report     report.Config
	ClickHouse clickHouseConfig
	LLM        llmConfig
}

type clickHouseConfig struct {
	Addr        []string
	Database    string
	Username    string
	Password    report.Secret
	DialTimeout time.Duration
}

// llmConfig holds the llm.* keys the reporter passes on to internal/llm.
type llmConfig struct {
	BaseURL          string
	APIKey           report.Secret
	Model            string
	NarrativeTimeout time.Duration
}

// rawConfig mirrors the YAML keys (DESIGN.md section 7) the reporter reads.
type rawConfig struct {
	Report struct {
		RetentionDays    int           `koanf:"retention_days"`
		Timezone         string        `koanf:"timezone"`
		OutDir           string        `koanf:"out_dir"`
		WebhookURL       string        `koanf:"webhook_url"`
		DeliveryTimeout  time.Duration `koanf:"delivery_timeout"`
		SensitivePaths   []string      `koanf:"sensitive_paths"`
		MinRouteRequests int           `koanf:"min_route_requests"`
		TopN             int           `koanf:"top_n"`
		QueryTimeout     time.Duration `koanf:"query_timeout"`
		MaxThreads       int           `koanf:"max_threads"`
		NarrativeTimeout time.Duration `koanf:"narrative_timeout"`
		SMTP             struct {
			Host     string   `koanf:"host"`
			Port     int      `koanf:"port"`
			From     string   `koanf:"from"`
			To       []string `koanf:"to"`
			Username string   `koanf:"username"`
			Password string   `koanf:"password"`
		} `koanf:"smtp"`
		SlowDrip struct {
			WindowDays       int     `koanf:"window_days"`
			MinDays          int     `koanf:"min_days"`
			MaxDailyRequests int     `koanf:"max_daily_requests"`
			MinErrorRatio    float64 `koanf:"min_error_ratio"`
		} `koanf:"slow_drip"`
		Health struct {
			DegradedErrorRate       float64       `koanf:"degraded_error_rate"`
			CriticalErrorRate       float64       `koanf:"critical_error_rate"`
			DegradedServerErrorRate float64       `koanf:"degraded_server_error_rate"`
			CriticalServerErrorRate float64       `koanf:"critical_server_error_rate"`
			DegradedP95             time.Duration `koanf:"degraded_p95"`
			CriticalP95             time.Duration `koanf:"critical_p95"`
		} `koanf:"health"`
	} `koanf:"report"`
	AccessLog struct {
		ClickHouse struct {
			Addr        []string      `koanf:"addr"`
			Database    string        `koanf:"database"`
			Username    string        `koanf:"username"`
			Password    string        `koanf:"password"`
			DialTimeout time.Duration `koanf:"dial_timeout"`
		} `koanf:"clickhouse"`
	} `koanf:"accesslog"`
	LLM struct {
		BaseURL          string        `koanf:"base_url"`
		APIKey           string        `koanf:"api_key"`
		Model            string        `koanf:"model"`
		NarrativeTimeout time.Duration `koanf:"narrative_timeout"`
	} `koanf:"llm"`
}

// defaults returns every key the reporter reads with its default; the key
// set also drives the environment mapping and the unknown-key check.
func defaults() map[string]any {
	d := report.DefaultConfig()
	h := d.Health
	return map[string]any{
		"report.retention_days":                    d.RetentionDays,
		"report.timezone":                          d.Location.String(),
		"report.out_dir":                           d.OutDir,
		"report.webhook_url":                       d.WebhookURL,
		"report.delivery_timeout":                  d.DeliveryTimeout.String(),
		"report.sensitive_paths":                   d.SensitivePrefixes,
		"report.min_route_requests":                d.MinRouteRequests,
		"report.top_n":                             d.TopN,
		"report.query_timeout":                     d.QueryTimeout.String(),
		"report.max_threads":                       d.MaxThreads,
		"report.narrative_timeout":                 d.NarrativeTimeout.String(),
		"report.smtp.host":                         "",
		"report.smtp.port":                         d.SMTP.Port,
		"report.smtp.from":                         "",
		"report.smtp.to":                           []string{},
		"report.smtp.username":                     "",
		"report.smtp.password":                     "",
		"report.slow_drip.window_days":             d.SlowDrip.WindowDays,
		"report.slow_drip.min_days":                d.SlowDrip.MinDays,
		"report.slow_drip.max_daily_requests":      d.SlowDrip.MaxDailyRequests,
		"report.slow_drip.min_error_ratio":         d.SlowDrip.MinErrorRatio,
		"report.health.degraded_error_rate":        h.DegradedErrorRate,
		"report.health.critical_error_rate":        h.CriticalErrorRate,
		"report.health.degraded_server_error_rate": h.DegradedServerErrorRate,
		"report.health.critical_server_error_rate": h.CriticalServerErrorRate,
		"report.health.degraded_p95":               h.DegradedP95.String(),
		"report.health.critical_p95":               h.CriticalP95.String(),
		"accesslog.clickhouse.addr":                []string{"127.0.0.1:9000"},
		"accesslog.clickhouse.database":            d.Database,
		"accesslog.clickhouse.username":            "",
		"accesslog.clickhouse.password":            "",
		"accesslog.clickhouse.dial_timeout":        "5s",
		"llm.base_url":                             "",
		"llm.api_key":                              "",
		"llm.model":                                "",
		"llm.narrative_timeout":                    d.NarrativeTimeout.String(),
	}
}

// listKeys take comma-separated values from the environment.
var listKeys = map[string]bool{"report.sensitive_paths": true, "report.smtp.to": true, "accesslog.clickhouse.addr": true}

// envKey maps SMARTLAYER_REPORT_SMTP_HOST to report.smtp.host by matching
// against the known keys: a plain "_" → "." replacement would break
// retention_days and friends.
func envKey(known map[string]any) func(k, v string) (string, any) {
	byEnv := make(map[string]string, len(known))
	for key := range known {
		byEnv["SMARTLAYER_"+strings.ToUpper(strings.NewReplacer(".", "_").Replace(key))] = key
	}
	return func(k, v string) (string, any) {
		key, ok := byEnv[k]
		if !ok {
			return "", nil // not ours (other sections belong to authz)
		}
		if listKeys[key] {
			var out []string
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					out = append(out, s)
				}
			}
			return key, out
		}
		return key, v
	}
}

// loadConfig layers defaults, the YAML file (when path is set) and
// SMARTLAYER_* environment variables, then validates. Errors name the key.
func loadConfig(path string) (appConfig, error) {
	k := koanf.New(".")
	known := defaults()
	if err := k.Load(confmap.Provider(known, "."), nil); err != nil {
		return appConfig{}, fmt.Errorf("config defaults: %w", err)
	}
	if path != "" {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return appConfig{}, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := k.Load(env.Provider(".", env.Opt{Prefix: "SMARTLAYER_", TransformFunc: envKey(known)}), nil); err != nil {
		return appConfig{}, fmt.Errorf("config environment: %w", err)
	}
	// The reporter owns report.*: a typo there would silently keep a default.
	var unknown []string
	for _, key := range k.Keys() {
		if _, ok := known[key]; !ok && strings.HasPrefix(key, "report.") {
			unknown = append(unknown, key)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return appConfig{}, fmt.Errorf("config: unknown keys %s", strings.Join(unknown, ", "))
	}
	var raw rawConfig
	if err := k.UnmarshalWithConf("", &raw, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return appConfig{}, fmt.Errorf("config: %w", err)
	}
	return raw.toApp()
}

func (raw rawConfig) toApp() (appConfig, error) {
	r := raw.Report
	cfg := report.DefaultConfig()
	var errs []error
	loc, err := time.LoadLocation(r.Timezone)
	if err != nil || r.Timezone == "" || r.Timezone == "Local" {
		errs = append(errs, fmt.Errorf("report.timezone: %q is not an IANA timezone name", r.Timezone))
	}
	cfg.Location = loc
	cfg.Database = raw.AccessLog.ClickHouse.Database
	cfg.RetentionDays = r.RetentionDays
	cfg.OutDir = r.OutDir
	cfg.WebhookURL = r.WebhookURL
	cfg.DeliveryTimeout = r.DeliveryTimeout
	cfg.SensitivePrefixes = r.SensitivePaths
	cfg.MinRouteRequests = r.MinRouteRequests
	cfg.TopN = r.TopN
	cfg.QueryTimeout = r.QueryTimeout
	cfg.MaxThreads = r.MaxThreads
	cfg.NarrativeTimeout = r.NarrativeTimeout
	cfg.SMTP = report.SMTPConfig{Host: r.SMTP.Host, Port: r.SMTP.Port, From: r.SMTP.From, To: r.SMTP.To,
		Username: r.SMTP.Username, Password: report.Secret(r.SMTP.Password)}
	cfg.SlowDrip = report.SlowDripConfig(r.SlowDrip)
	cfg.Health = report.HealthThresholds(r.Health)
	if cfg.Location != nil {
		errs = append(errs, cfg.Validate())
	}
	ch := raw.AccessLog.ClickHouse
	if len(ch.Addr) == 0 {
		errs = append(errs, errors.New("accesslog.clickhouse.addr: the reporter needs a ClickHouse address"))
	}
	if ch.DialTimeout <= 0 {
		errs = append(errs, errors.New("accesslog.clickhouse.dial_timeout: must be > 0"))
	}
	l := raw.LLM
	if l.BaseURL != "" && l.Model == "" {
		errs = append(errs, errors.New("llm.model: must be set when llm.base_url is"))
	}
	if err := errors.Join(errs...); err != nil {
		return appConfig{}, err
	}
	return appConfig{
		Report: cfg,
		ClickHouse: clickHouseConfig{Addr: ch.Addr, Database: ch.Database, Username: ch.Username,
			Password: report.Secret(ch.Password), DialTimeout: ch.DialTimeout},
		LLM: llmConfig{BaseURL: l.BaseURL, APIKey: report.Secret(l.APIKey), Model: l.Model, NarrativeTimeout: l.NarrativeTimeout},
	}, nil
}
