// Package config composes smartlayer's configuration from the modules'
// own configurations, loads it with koanf in layers — the modules' defaults,
// a YAML file, SMARTLAYER_* environment variables, command-line flags — and
// watches the file. It owns no setting: each module's Config carries its
// koanf tags, its DefaultConfig and its Validate (the OpenTelemetry
// collector's pattern), so a new setting touches only its module.
package config

import (
	"errors"

	"github.com/smartlayer/smartlayer/internal/accesslog"
	"github.com/smartlayer/smartlayer/internal/authz"
	"github.com/smartlayer/smartlayer/internal/llm"
	"github.com/smartlayer/smartlayer/internal/logging"
	"github.com/smartlayer/smartlayer/internal/quota"
	"github.com/smartlayer/smartlayer/internal/report"
	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/scoring/payload"
	"github.com/smartlayer/smartlayer/internal/server"
	"github.com/smartlayer/smartlayer/internal/setting"
	"github.com/smartlayer/smartlayer/internal/store"
)

// Config is the whole configuration: one section per module. It is loaded
// once (and again on hot reload) and passed down by value; nothing re-reads
// the environment later.
type Config struct {
	Server    server.Config          `koanf:"server"`
	Log       logging.Config         `koanf:"log"`
	Identity  authz.Identity         `koanf:"identity"`
	Store     store.Config           `koanf:"store"`
	Behavior  scoring.BehaviorConfig `koanf:"behavior"`
	Payload   payload.Config         `koanf:"payload"`
	Quota     quota.Config           `koanf:"quota"`
	LLM       llm.Config             `koanf:"llm"`
	AccessLog accesslog.Config       `koanf:"accesslog"`
	Report    report.Config          `koanf:"report"`

	// Notices are warnings of the load that did not stop it, such as a
	// deprecated key and its replacement. Log or print them.
	Notices []string `koanf:"-"`
}

// Default returns the modules' defaults: every listener on its documented
// port, the memory store, every module enforcing, no LLM, no ClickHouse.
func Default() Config {
	c := Config{
		Server:    server.DefaultConfig(),
		Log:       logging.DefaultConfig(),
		Identity:  authz.DefaultIdentity(),
		Store:     store.DefaultConfig(),
		Behavior:  scoring.DefaultBehaviorConfig(),
		Payload:   payload.DefaultConfig(),
		Quota:     quota.DefaultConfig(),
		LLM:       llm.DefaultConfig(),
		AccessLog: accesslog.DefaultConfig(),
		Report:    report.DefaultConfig(),
	}
	c.link()
	return c
}

// link copies the values one module reads from another's section, so that
// each setting has one key: the body cap from payload.max_body_bytes, the
// identity headers Envoy logs, the report's database and sensitive paths.
// (The LLM client has no timeout of its own: each use bounds its calls.)
func (c *Config) link() {
	c.Identity.MaxBodyBytes = c.Payload.MaxBodyBytes
	c.Payload.DecisionBudget = c.Server.DecisionBudget
	c.AccessLog.UserHeader, c.AccessLog.PlanHeader = c.Identity.UserHeader, c.Identity.PlanHeader
	c.Report.Database = c.AccessLog.ClickHouse.Database
	c.Report.Cluster = c.AccessLog.ClickHouse.Cluster
	c.Report.SensitivePrefixes = c.Behavior.SensitivePaths
}

// Validate runs every module's own validation and reports every problem at
// once, each naming its key. check-config, serve and a hot reload all call
// exactly this.
func (c *Config) Validate() error {
	return errors.Join(
		c.Server.Validate(),
		c.Log.Validate(),
		c.Identity.Validate(),
		c.Store.Validate(),
		c.Behavior.Validate(),
		c.Payload.Validate(),
		c.Quota.Validate(),
		c.LLM.Validate(),
		c.AccessLog.Validate(),
		c.Report.Validate(),
	)
}

// KeyError names the configuration key a problem is about.
type KeyError = setting.KeyError

// Secret is a string that never prints.
type Secret = setting.Secret
