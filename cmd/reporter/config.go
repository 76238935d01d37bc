package main

import (
	"fmt"
	"time"
	_ "time/tzdata" // report.timezone must resolve in minimal containers too

	"github.com/smartlayer/smartlayer/internal/config"
	"github.com/smartlayer/smartlayer/internal/report"
)

// appConfig is what the reporter binary needs: the report package's Config
// plus the connections only cmd/ builds.
type appConfig struct {
	Report     report.Config
	ClickHouse config.ClickHouse
	LLM        config.LLM
}

// loadConfig reads the same configuration authz reads (defaults → YAML →
// SMARTLAYER_* environment) and validates the report's part of it.
func loadConfig(path string) (appConfig, error) {
	c, err := config.Load(config.Source{File: path})
	if err != nil {
		return appConfig{}, err
	}
	if len(c.AccessLog.ClickHouse.Addr) == 0 {
		return appConfig{}, &config.KeyError{Key: "accesslog.clickhouse.addr", Msg: "must be set: the report is computed in ClickHouse"}
	}
	rc, err := reportConfig(c)
	if err != nil {
		return appConfig{}, err
	}
	if err := rc.Validate(); err != nil {
		return appConfig{}, err
	}
	return appConfig{Report: rc, ClickHouse: c.AccessLog.ClickHouse, LLM: c.LLM}, nil
}

func reportConfig(c config.Config) (report.Config, error) {
	r := c.Report
	loc, err := time.LoadLocation(r.Timezone)
	if err != nil {
		return report.Config{}, fmt.Errorf("report.timezone: %w", err)
	}
	return report.Config{
		Database:        c.AccessLog.ClickHouse.Database,
		Location:        loc,
		RetentionDays:   r.RetentionDays,
		OutDir:          r.OutDir,
		WebhookURL:      r.WebhookURL,
		DeliveryTimeout: r.DeliveryTimeout,
		SMTP: report.SMTPConfig{Host: r.SMTP.Host, Port: r.SMTP.Port, From: r.SMTP.From, To: r.SMTP.To,
			Username: r.SMTP.Username, Password: report.Secret(r.SMTP.Password)},
		SensitivePrefixes: r.SensitivePaths,
		SlowDrip: report.SlowDripConfig{WindowDays: r.SlowDrip.WindowDays, MinDays: r.SlowDrip.MinDays,
			MaxDailyRequests: r.SlowDrip.MaxDailyRequests, MinErrorRatio: r.SlowDrip.MinErrorRatio},
		MinRouteRequests: r.MinRouteRequests,
		TopN:             r.TopN,
		Health: report.HealthThresholds{
			DegradedErrorRate: r.Health.DegradedErrorRate, CriticalErrorRate: r.Health.CriticalErrorRate,
			DegradedServerErrorRate: r.Health.DegradedServerErrorRate, CriticalServerErrorRate: r.Health.CriticalServerErrorRate,
			DegradedP95: r.Health.DegradedP95, CriticalP95: r.Health.CriticalP95,
		},
		QueryTimeout:     r.QueryTimeout,
		MaxThreads:       r.MaxThreads,
		NarrativeTimeout: r.NarrativeTimeout,
	}, nil
}
