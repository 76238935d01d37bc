package server

import (
	"time"

	"github.com/smartlayer/smartlayer/internal/setting"
)

// FailMode is the decision when the pipeline cannot decide: a store down,
// a bug, the decision budget overrun.
type FailMode string

// Fail modes.
const (
	FailAllow FailMode = "allow"
	FailDeny  FailMode = "deny"
)

// Config configures the listeners and the request-path guarantees
// (server.*).
type Config struct {
	AuthzAddr  string         `koanf:"authz_addr"`
	ALSAddr    string         `koanf:"als_addr"`
	AdminAddr  string         `koanf:"admin_addr"`
	AdminToken setting.Secret `koanf:"admin_token"`
	// AuthzToken and ALSToken, when set, must arrive as gRPC metadata
	// "authorization: Bearer <token>" on every Check and access-log stream
	// (Envoy: grpc_service.initial_metadata). They add to mTLS (tls.*):
	// anyone who can reach an unauthenticated ALS port can write rows and
	// feed behaviour scoring.
	AuthzToken setting.Secret `koanf:"authz_token"`
	ALSToken   setting.Secret `koanf:"als_token"`
	// DenyDetail is what a denied client is told: "none" (status, a
	// generic word, the request id) or "reason" (also the rule, in the
	// body and x-smartlayer-reason). The detail is always in the logs,
	// the access log and Envoy's dynamic metadata.
	DenyDetail string `koanf:"deny_detail"`
	// Reflection registers gRPC server reflection on the ext_authz port
	// (for grpcurl); off by default, it tells a scanner what it faces.
	Reflection bool `koanf:"reflection"`
	// Pprof serves Go's profiler (/debug/pprof/) on the admin listener,
	// behind admin_token: what an operator attaches `go tool pprof` to
	// when authz takes more CPU than it should. Off by default.
	Pprof bool `koanf:"pprof"`
	// DecisionBudget bounds the time one Check may take; past it the
	// configured FailMode answers.
	DecisionBudget time.Duration `koanf:"decision_budget"`
	FailMode       FailMode      `koanf:"fail_mode"`
	// DrainDelay: on SIGTERM readiness fails and gRPC health says
	// NOT_SERVING at once, but Checks are answered for this long while
	// Envoy and Kubernetes stop sending. Then ShutdownTimeout bounds
	// draining in-flight Checks, ending the access-log streams and
	// flushing (or spooling) the access log: the pod's grace period must
	// exceed drain_delay + shutdown_timeout.
	DrainDelay      time.Duration `koanf:"drain_delay"`
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	// MaxRecvMsgBytes caps one gRPC message (CheckRequest with body, ALS batch).
	MaxRecvMsgBytes int       `koanf:"max_recv_msg_bytes"`
	TLS             TLSConfig `koanf:"tls"`
}

// TLSConfig enables TLS (and mTLS with ClientCAFile) on the gRPC listeners
// (server.tls.*).
type TLSConfig struct {
	CertFile     string `koanf:"cert_file"`
	KeyFile      string `koanf:"key_file"`
	ClientCAFile string `koanf:"client_ca_file"`
}

// DefaultConfig puts every listener on its documented port.
func DefaultConfig() Config {
	return Config{
		AuthzAddr: ":9001", ALSAddr: ":9002", AdminAddr: ":9090",
		DecisionBudget: 50 * time.Millisecond, FailMode: FailAllow,
		DrainDelay: 5 * time.Second, ShutdownTimeout: 20 * time.Second, MaxRecvMsgBytes: 8 << 20, DenyDetail: "none",
	}
}

// Validate reports every problem at once, named by its YAML key (server.*).
func (c Config) Validate() error {
	p := setting.Section("server")
	p.Addr("authz_addr", c.AuthzAddr, true)
	p.Addr("als_addr", c.ALSAddr, false)
	p.Addr("admin_addr", c.AdminAddr, false)
	p.AtLeastDuration("decision_budget", c.DecisionBudget, time.Millisecond)
	p.AtLeastDuration("shutdown_timeout", c.ShutdownTimeout, time.Second)
	if c.DrainDelay < 0 || c.DrainDelay > time.Minute {
		p.Add("drain_delay", c.DrainDelay, "must be in 0s..1m")
	}
	p.OneOf("fail_mode", string(c.FailMode), string(FailAllow), string(FailDeny))
	p.OneOf("deny_detail", c.DenyDetail, "none", "reason")
	p.AtLeast("max_recv_msg_bytes", c.MaxRecvMsgBytes, 64<<10)
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		p.Add("tls", nil, "cert_file and key_file must be set together")
	}
	if c.TLS.ClientCAFile != "" && c.TLS.CertFile == "" {
		p.Add("tls.client_ca_file", c.TLS.ClientCAFile, "needs cert_file and key_file")
	}
	return p.Err()
}
