package deploy

import (
	"encoding/xml"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/smartlayer/smartlayer/internal/manifest"
)

// composeFile is the subset of the Compose spec we use. It is decoded strictly:
// a misspelled key (say `depend_on`) fails here instead of being ignored.
type composeFile struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
	Volumes  map[string]any            `json:"volumes"`
}

type composeService struct {
	Image       string            `json:"image"`
	Build       string            `json:"build"`
	Command     []string          `json:"command"`
	Entrypoint  []string          `json:"entrypoint"`
	Volumes     []string          `json:"volumes"`
	Ports       []string          `json:"ports"`
	Expose      []string          `json:"expose"`
	Environment map[string]string `json:"environment"`
	Profiles    []string          `json:"profiles"`
	DependsOn   map[string]any    `json:"depends_on"`
	Healthcheck map[string]any    `json:"healthcheck"`
	Ulimits     map[string]any    `json:"ulimits"`
	Restart     string            `json:"restart"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	mustReadYAML(t, repo+"/docker-compose.yml", &c)
	return c
}

// mount is one parsed `source:target[:mode]` volume entry.
type mount struct{ source, target string }

func mounts(s composeService) []mount {
	var out []mount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			out = append(out, mount{parts[0], parts[1]})
		}
	}
	return out
}

// checkMounts reports bind sources that do not exist under root and named
// volumes the file does not declare.
func checkMounts(root string, c composeFile) []error {
	var errs []error
	for name, s := range c.Services {
		for _, m := range mounts(s) {
			if strings.HasPrefix(m.source, ".") || strings.HasPrefix(m.source, "/") {
				if _, err := os.Stat(filepath.Join(root, m.source)); err != nil {
					errs = append(errs, fmt.Errorf("service %s mounts %s: %w", name, m.source, err))
				}
				continue
			}
			if _, ok := c.Volumes[m.source]; !ok {
				errs = append(errs, fmt.Errorf("service %s: named volume %q is not declared", name, m.source))
			}
		}
		if s.Build != "" {
			if _, err := os.Stat(filepath.Join(root, s.Build, "Dockerfile")); err != nil {
				errs = append(errs, fmt.Errorf("service %s builds %s: %w", name, s.Build, err))
			}
		}
		if s.Image == "" && s.Build == "" {
			errs = append(errs, fmt.Errorf("service %s has neither image nor build", name))
		}
		for dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				errs = append(errs, fmt.Errorf("service %s depends on unknown %s", name, dep))
			}
		}
	}
	return errs
}

func TestComposeMountsExist(t *testing.T) {
	c := loadCompose(t)
	for _, err := range checkMounts(repo, c) {
		t.Error(err)
	}
	// The same check must catch a missing file and an undeclared volume.
	broken := composeFile{
		Services: map[string]composeService{"x": {Image: "i", Volumes: []string{"./no/such/file.yaml:/etc/x:ro", "undeclared:/data"}}},
		Volumes:  map[string]any{},
	}
	if errs := checkMounts(repo, broken); len(errs) != 2 {
		t.Errorf("checkMounts on a broken file: want 2 errors, got %v", errs)
	}
}

func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"envoy", "authz", "app", "redis", "clickhouse", "grafana", "reporter"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("missing service %s", name)
		}
	}
	images := map[string]*regexp.Regexp{
		"envoy":      regexp.MustCompile(`^envoyproxy/envoy:v1\.3\d\.\d+$`), // pinned, not a moving tag
		"redis":      regexp.MustCompile(`^redis:7$`),
		"clickhouse": regexp.MustCompile(`^clickhouse/clickhouse-server:24\.8$`),
		"grafana":    regexp.MustCompile(`^grafana/grafana:\d+\.\d+\.\d+$`),
	}
	for name, re := range images {
		if img := c.Services[name].Image; !re.MatchString(img) {
			t.Errorf("%s image %q, want %s", name, img, re)
		}
	}
	if !strings.Contains(c.Services["grafana"].Environment["GF_INSTALL_PLUGINS"], "grafana-clickhouse-datasource") {
		t.Error("grafana: GF_INSTALL_PLUGINS does not install grafana-clickhouse-datasource")
	}
	authz, rep := c.Services["authz"], c.Services["reporter"]
	if authz.Build == "" || rep.Image != authz.Image {
		t.Errorf("authz must be built from the Dockerfile and reporter must reuse its image (%q vs %q)", rep.Image, authz.Image)
	}
	if want := []string{"/usr/local/bin/authz", "serve", "--config", "/etc/smartlayer/config.yaml"}; !slices.Equal(authz.Command, want) {
		t.Errorf("authz command %q, want %q", authz.Command, want)
	}
	if len(rep.Profiles) == 0 {
		t.Error("reporter needs a profile so `docker compose up` does not start it (`run` still does)")
	}
	if len(rep.Entrypoint) == 0 || path.Base(rep.Entrypoint[0]) != "reporter" {
		t.Errorf("reporter entrypoint %q, want the reporter binary", rep.Entrypoint)
	}
	// Both programs read the config file they are given, from the file we ship.
	for name, args := range map[string][]string{"authz": authz.Command, "reporter": rep.Entrypoint} {
		cfgArg := argAfter(args, "--config")
		if src := mountSource(c.Services[name], cfgArg); src != "./deploy/config/smartlayer.yaml" {
			t.Errorf("%s: --config %q is mounted from %q, want ./deploy/config/smartlayer.yaml", name, cfgArg, src)
		}
	}
	envoy := c.Services["envoy"]
	if src := mountSource(envoy, argAfter(envoy.Command, "-c")); src != "./envoy/envoy.yaml" {
		t.Errorf("envoy: -c %q is mounted from %q, want ./envoy/envoy.yaml", argAfter(envoy.Command, "-c"), src)
	}
}

func argAfter(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

func mountSource(s composeService, target string) string {
	for _, m := range mounts(s) {
		if m.target == target {
			return m.source
		}
	}
	return ""
}

// publishes reports whether the service publishes containerPort (as "host:container").
func publishes(s composeService, containerPort int) bool {
	for _, p := range s.Ports {
		parts := strings.Split(p, ":")
		if parts[len(parts)-1] == fmt.Sprint(containerPort) {
			return true
		}
	}
	return false
}

// envoyClusters reads cluster name → (address, port) from envoy.yaml. Loose on
// purpose: envoy/envoy_test.go validates the file against Envoy's API.
func envoyClusters(t *testing.T) (clusters map[string]mount, listenerPort int) {
	t.Helper()
	docs, err := manifest.ReadDocs(repo + "/envoy/envoy.yaml")
	if err != nil || len(docs) != 1 {
		t.Fatalf("envoy.yaml: %v (%d documents)", err, len(docs))
	}
	b := docs[0].Raw
	clusters = map[string]mount{}
	list, _ := manifest.Get(b, "static_resources", "clusters").([]any)
	for _, c := range list {
		sa := manifest.Get(c, "load_assignment", "endpoints", 0, "lb_endpoints", 0, "endpoint", "address", "socket_address")
		clusters[manifest.Str(c, "name")] = mount{source: manifest.Str(sa, "address"), target: fmt.Sprint(manifest.Get(sa, "port_value"))}
	}
	port, _ := manifest.Get(b, "static_resources", "listeners", 0, "address", "socket_address", "port_value").(int)
	return clusters, port
}

func TestComposePortsAgree(t *testing.T) {
	c := loadCompose(t)
	cfg := loadConfig(t)
	clusters, listener := envoyClusters(t)

	_, authzPort := hostPort(t, cfg.Server.AuthzAddr)
	_, alsPort := hostPort(t, cfg.Server.ALSAddr)
	_, adminPort := hostPort(t, cfg.Server.AdminAddr)
	for cluster, want := range map[string]mount{
		"smartlayer_authz": {"authz", fmt.Sprint(authzPort)},
		"smartlayer_als":   {"authz", fmt.Sprint(alsPort)},
	} {
		if got := clusters[cluster]; got != want {
			t.Errorf("envoy cluster %s -> %s:%s, want the compose service %s:%s (config)", cluster, got.source, got.target, want.source, want.target)
		}
	}
	if app, ok := c.Services[clusters["app"].source]; !ok || !slices.Contains(app.Expose, clusters["app"].target) {
		t.Errorf("envoy cluster app -> %s:%s, want a compose service exposing that port", clusters["app"].source, clusters["app"].target)
	}
	if !publishes(c.Services["envoy"], listener) {
		t.Errorf("envoy listens on %d but compose does not publish it", listener)
	}
	if !publishes(c.Services["authz"], adminPort) {
		t.Errorf("authz admin port %d (server.admin_addr) is not published", adminPort)
	}
	// Only Envoy's listener is open to the world; the admin API and Grafana
	// are published on the host's loopback.
	for name, svc := range c.Services {
		for _, p := range svc.Ports {
			if name != "envoy" && !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("compose service %s publishes %q on every host interface", name, p)
			}
		}
	}
	// The tokens Envoy sends (initial_metadata) are the ones authz expects.
	envoyYAML, err := os.ReadFile(repo + "/envoy/envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for env, cluster := range map[string]string{"SMARTLAYER_SERVER_AUTHZ_TOKEN": "smartlayer_authz", "SMARTLAYER_SERVER_ALS_TOKEN": "smartlayer_als"} {
		tok := c.Services["authz"].Environment[env]
		if tok == "" || !strings.Contains(string(envoyYAML), `value: "Bearer `+tok+`"`) {
			t.Errorf("authz %s = %q: envoy.yaml must send it to %s as initial_metadata", env, tok, cluster)
		}
	}

	if cfg.Store.Backend != "redis" {
		t.Errorf("store.backend %q: the compose/k8s config shares state through Redis", cfg.Store.Backend)
	}
	if len(cfg.Store.Redis.Addrs) != 1 {
		t.Fatalf("store.redis.addrs %v: want the compose redis service", cfg.Store.Redis.Addrs)
	}
	if h, p := hostPort(t, cfg.Store.Redis.Addrs[0]); c.Services[h].Image == "" || p != 6379 {
		t.Errorf("store.redis.addrs %v: want the compose redis service on 6379", cfg.Store.Redis.Addrs)
	}
	if len(cfg.AccessLog.ClickHouse.Addr) == 0 {
		t.Fatal("accesslog.clickhouse.addr is empty")
	}
	chHost, chPort := hostPort(t, cfg.AccessLog.ClickHouse.Addr[0])
	if !strings.HasPrefix(c.Services[chHost].Image, "clickhouse/") || chPort != 9000 {
		t.Errorf("accesslog.clickhouse.addr %v: want the clickhouse service's native port 9000", cfg.AccessLog.ClickHouse.Addr)
	}
	if src := mountSource(c.Services["authz"], cfg.AccessLog.SpoolDir); src == "" || strings.HasPrefix(src, ".") {
		t.Errorf("accesslog.spool_dir %q is not a named volume in the authz service (got %q)", cfg.AccessLog.SpoolDir, src)
	}

	// ClickHouse identities: the writer from the config, the reader for Grafana.
	ch := c.Services[chHost]
	if ch.Environment["CLICKHOUSE_USER"] != cfg.AccessLog.ClickHouse.Username || ch.Environment["CLICKHOUSE_DB"] != cfg.AccessLog.ClickHouse.Database {
		t.Errorf("clickhouse CLICKHOUSE_USER/DB %q/%q, want accesslog.clickhouse.username/database %q/%q",
			ch.Environment["CLICKHOUSE_USER"], ch.Environment["CLICKHOUSE_DB"], cfg.AccessLog.ClickHouse.Username, cfg.AccessLog.ClickHouse.Database)
	}
	for _, svc := range []string{"authz", "reporter"} {
		if got := c.Services[svc].Environment["SMARTLAYER_ACCESSLOG_CLICKHOUSE_PASSWORD"]; got != ch.Environment["CLICKHOUSE_PASSWORD"] {
			t.Errorf("%s: ClickHouse password %q, clickhouse service has %q", svc, got, ch.Environment["CLICKHOUSE_PASSWORD"])
		}
	}
	ds := loadDatasource(t)
	if ds.JSONData.Host != chHost || ds.JSONData.Port != chPort || ds.JSONData.Protocol != "native" || ds.JSONData.DefaultDatabase != cfg.AccessLog.ClickHouse.Database {
		t.Errorf("grafana datasource %+v: want native %s:%d database %s", ds.JSONData, chHost, chPort, cfg.AccessLog.ClickHouse.Database)
	}
	user, passwordEnv := readerUser(t, repo+"/"+strings.TrimPrefix(mountSourceByPrefix(ch, "/etc/clickhouse-server/users.d/"), "./"))
	if ds.JSONData.Username != user {
		t.Errorf("grafana datasource user %q, users.d defines %q", ds.JSONData.Username, user)
	}
	if ds.SecureJSONData.Password != "$"+passwordEnv {
		t.Errorf("grafana datasource password %q, want $%s (the reader's from_env)", ds.SecureJSONData.Password, passwordEnv)
	}
	if g := c.Services["grafana"].Environment[passwordEnv]; g == "" || g != ch.Environment[passwordEnv] {
		t.Errorf("%s: grafana has %q, clickhouse has %q", passwordEnv, g, ch.Environment[passwordEnv])
	}
	for _, dir := range []string{"/etc/grafana/provisioning", "/etc/grafana/dashboards"} {
		if mountSource(c.Services["grafana"], dir) == "" {
			t.Errorf("grafana: nothing mounted at %s", dir)
		}
	}
	if p := loadDashboardProvider(t); mountSource(c.Services["grafana"], p) == "" {
		t.Errorf("grafana dashboard provider reads %s, which compose does not mount", p)
	}
}

func mountSourceByPrefix(s composeService, prefix string) string {
	for _, m := range mounts(s) {
		if strings.HasPrefix(m.target, prefix) {
			return m.source
		}
	}
	return ""
}

// readerUser returns the one user a users.d file defines and its password's from_env.
func readerUser(t *testing.T, file string) (user, passwordEnv string) {
	t.Helper()
	var x struct {
		Users struct {
			Users []struct {
				XMLName  xml.Name
				Password struct {
					FromEnv string `xml:"from_env,attr"`
				} `xml:"password"`
				Profile string `xml:"profile"`
			} `xml:",any"`
		} `xml:"users"`
		Profiles struct {
			Profiles []struct {
				XMLName  xml.Name
				Readonly int `xml:"readonly"`
			} `xml:",any"`
		} `xml:"profiles"`
	}
	decodeFile(t, file, &x, xml.Unmarshal)
	if len(x.Users.Users) != 1 {
		t.Fatalf("%s: want one user, got %d", file, len(x.Users.Users))
	}
	u := x.Users.Users[0]
	var readonly bool
	for _, p := range x.Profiles.Profiles {
		readonly = readonly || (p.XMLName.Local == u.Profile && p.Readonly == 1)
	}
	if !readonly {
		t.Errorf("%s: user %s's profile %q is not readonly=1", file, u.XMLName.Local, u.Profile)
	}
	return u.XMLName.Local, u.Password.FromEnv
}

// TestDockerfile checks the build the compose file and the manifests rely on.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(repo + "/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]string // instructions per stage, continuation lines joined
	var cur string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, cur = cur+line, ""
		if strings.HasPrefix(line, "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], line)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stages", len(stages))
	}
	build, final := strings.Join(stages[0], "\n"), strings.Join(stages[len(stages)-1], "\n")
	checks := map[string]bool{
		"build stage FROM golang":               strings.HasPrefix(stages[0][0], "FROM golang:"),
		"final stage distroless static nonroot": stages[len(stages)-1][0] == "FROM gcr.io/distroless/static:nonroot",
		"CGO_ENABLED=0":                         strings.Contains(build, "CGO_ENABLED=0"),
		"builds cmd/authz and cmd/reporter":     regexp.MustCompile(`go build .*\./cmd/authz .*\./cmd/reporter`).MatchString(build),
		"USER nonroot":                          regexp.MustCompile(`(?m)^USER nonroot(:nonroot)?$`).MatchString(final),
		"spool dir owned by nonroot":            regexp.MustCompile(`(?m)^COPY --from=\S+ --chown=65532:65532 \S+ /var/spool/smartlayer$`).MatchString(final),
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("Dockerfile: %s", name)
		}
	}
	// Every binary path compose and Kubernetes start must be one the image has.
	var bins []string
	for _, l := range stages[len(stages)-1] {
		if f := strings.Fields(l); len(f) > 2 && f[0] == "COPY" && f[len(f)-1] == "/usr/local/bin/" {
			for _, src := range f[1 : len(f)-1] {
				if !strings.HasPrefix(src, "--") {
					bins = append(bins, "/usr/local/bin/"+path.Base(src))
				}
			}
		}
	}
	c := loadCompose(t)
	starts := map[string]string{"compose authz": c.Services["authz"].Command[0], "compose reporter": c.Services["reporter"].Entrypoint[0]}
	for _, ct := range k8sContainers(t) {
		starts["kubernetes "+ct.owner] = ct.Command[0]
	}
	for who, bin := range starts {
		if !slices.Contains(bins, bin) {
			t.Errorf("%s starts %s; the image has %v", who, bin, bins)
		}
	}
	if cfg := loadConfig(t); !strings.Contains(final, cfg.AccessLog.SpoolDir) {
		t.Errorf("the image does not create accesslog.spool_dir %s", cfg.AccessLog.SpoolDir)
	}
}
