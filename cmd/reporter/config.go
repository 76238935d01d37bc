package main

import (
	_ "time/tzdata" // report.timezone must resolve in minimal containers too

	"github.com/smartlayer/smartlayer/internal/accesslog"
	"github.com/smartlayer/smartlayer/internal/config"
	"github.com/smartlayer/smartlayer/internal/llm"
	"github.com/smartlayer/smartlayer/internal/report"
)

// appConfig is what the reporter binary needs: the report package's Config
// plus the connections only cmd/ builds.
type appConfig struct {
	Report     report.Config
	ClickHouse accesslog.ClickHouseConfig
	LLM        llm.Config
}

// loadConfig reads the same configuration authz reads (defaults → YAML →
// SMARTLAYER_* environment), validated by the modules themselves.
func loadConfig(path string) (appConfig, error) {
	c, err := config.Load(config.Source{File: path})
	if err != nil {
		return appConfig{}, err
	}
	if !c.AccessLog.ClickHouse.Enabled() {
		return appConfig{}, &config.KeyError{Key: "accesslog.clickhouse.addr", Msg: "must be set: the report is computed in ClickHouse"}
	}
	return appConfig{Report: c.Report, ClickHouse: c.AccessLog.ClickHouse, LLM: c.LLM}, nil
}
