package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const alertsPath = repo + "/deploy/prometheus/alerts.yaml"

type promRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type prometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Groups []struct {
			Name  string     `json:"name"`
			Rules []promRule `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// pendingMetrics are used by a rule before any build registers them; the
// rule is then silent. Remove a name once the code registers it.
var pendingMetrics = map[string]string{}

// registeredMetrics reads every prometheus.*Opts literal and every
// internal/prom constructor call (prom.Counter("name", ...)) in the module's
// Go sources (tests excluded) and returns the full metric names, with
// Namespace, Subsystem and name prefixes resolved when they are constants.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, dir := range []string{repo + "/internal", repo + "/cmd"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				return err
			}
			consts := fileConsts(f)
			ast.Inspect(f, func(n ast.Node) bool {
				if name, ok := promConstructorName(n, consts); ok {
					names[name] = true
					return true
				}
				cl, ok := n.(*ast.CompositeLit)
				if !ok {
					return true
				}
				sel, ok := cl.Type.(*ast.SelectorExpr)
				if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "prometheus" {
					return true
				}
				var ns, sub, name string
				for _, e := range cl.Elts {
					kv, ok := e.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					key, _ := kv.Key.(*ast.Ident)
					if key == nil {
						continue
					}
					v, ok := stringValue(kv.Value, consts)
					if !ok {
						continue
					}
					switch key.Name {
					case "Namespace":
						ns = v
					case "Subsystem":
						sub = v
					case "Name":
						name = v
					}
				}
				if name != "" {
					names[prometheus.BuildFQName(ns, sub, name)] = true
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// fileConsts collects the string constants of a file, at any level
// (`const ns, sub = "smartlayer", "accesslog"` inside a function too).
func fileConsts(f *ast.File) map[string]string {
	out := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		gd, ok := n.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			return true
		}
		for _, s := range gd.Specs {
			vs := s.(*ast.ValueSpec)
			for i, id := range vs.Names {
				if i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if v, err := strconv.Unquote(lit.Value); err == nil {
							out[id.Name] = v
						}
					}
				}
			}
		}
		return true
	})
	return out
}

// promConstructorName is the metric name of a call to one of
// internal/prom's constructors, its first argument.
func promConstructorName(n ast.Node, consts map[string]string) (string, bool) {
	call, ok := n.(*ast.CallExpr)
	if !ok || len(call.Args) == 0 {
		return "", false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return "", false
	}
	if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "prom" {
		return "", false
	}
	switch sel.Sel.Name {
	case "Counter", "CounterVec", "Gauge", "GaugeVec", "Histogram", "HistogramVec":
		return stringValue(call.Args[0], consts)
	}
	return "", false
}

// stringValue is the value of a string literal, a string constant or a
// concatenation of them.
func stringValue(e ast.Expr, consts map[string]string) (string, bool) {
	switch v := e.(type) {
	case *ast.BinaryExpr:
		if v.Op != token.ADD {
			return "", false
		}
		x, okX := stringValue(v.X, consts)
		y, okY := stringValue(v.Y, consts)
		return x + y, okX && okY
	case *ast.BasicLit:
		if v.Kind == token.STRING {
			s, err := strconv.Unquote(v.Value)
			return s, err == nil
		}
	case *ast.Ident:
		s, ok := consts[v.Name]
		return s, ok
	}
	return "", false
}

var metricRe = regexp.MustCompile(`\bsmartlayer_[a-z0-9_]+`)

func TestRegisteredMetricsScan(t *testing.T) {
	got := registeredMetrics(t)
	// Spot checks across the ways the code names metrics: plain Name,
	// Namespace/Subsystem literals, and internal/prom calls with literal
	// names and with a constant prefix.
	for _, want := range []string{"smartlayer_checks_total", "smartlayer_check_errors_total",
		"smartlayer_payload_inspections_total", "smartlayer_behavior_bans_total", "smartlayer_quota_decisions_total",
		"smartlayer_accesslog_dropped_rows_total", "smartlayer_accesslog_spool_bytes", "smartlayer_llm_calls_total"} {
		if !got[want] {
			t.Errorf("scan misses %s (found %d metrics)", want, len(got))
		}
	}
}

func TestAlertRules(t *testing.T) {
	var pr prometheusRule
	mustReadYAML(t, alertsPath, &pr)
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata.Name == "" || pr.Metadata.Namespace != "smartlayer" {
		t.Fatalf("not a PrometheusRule for the smartlayer namespace: %s %s %+v", pr.APIVersion, pr.Kind, pr.Metadata)
	}
	registered := registeredMetrics(t)
	used := map[string]bool{}
	alerts := map[string]promRule{}
	for _, g := range pr.Spec.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q is empty or unnamed", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" {
				t.Errorf("rule %+v: alert and expr are required", r)
				continue
			}
			if _, dup := alerts[r.Alert]; dup {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			alerts[r.Alert] = r
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary and description annotations are required", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if err := balanced(r.Expr); err != "" {
				t.Errorf("%s: %s in %q", r.Alert, err, r.Expr)
			}
			for _, m := range metricRe.FindAllString(r.Expr, -1) {
				used[m] = true
				base := m
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(m, suf); ok && registered[b] {
						base = b
					}
				}
				if !registered[base] {
					if why, ok := pendingMetrics[m]; ok {
						t.Logf("%s uses %s, not registered yet (%s)", r.Alert, m, why)
						continue
					}
					t.Errorf("%s uses %s, which no Go source registers", r.Alert, m)
				}
			}
		}
	}
	for m := range pendingMetrics {
		if registered[m] {
			t.Errorf("%s is registered now: drop it from pendingMetrics", m)
		}
	}
	// What the rules must cover (issue 19).
	for what, metric := range map[string]string{
		"fail-open ratio":    "smartlayer_checks_total",
		"access-log drops":   "smartlayer_accesslog_dropped_rows_total",
		"spool growth":       "smartlayer_accesslog_spool_bytes",
		"Redis errors":       "smartlayer_quota_redis_errors_total",
		"config reload fail": "smartlayer_config_reloads_total",
	} {
		if !used[metric] {
			t.Errorf("no rule about %s (%s)", what, metric)
		}
	}
	fo, ok := alerts["SmartlayerFailOpenCritical"]
	if !ok || !strings.Contains(fo.Expr, `module="failmode"`) || !strings.Contains(fo.Expr, "> 0.01") {
		t.Errorf("fail-open critical rule %+v: want failmode Checks over 1 %%", fo)
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range alerts {
			if !yield(n) {
				return
			}
		}
	})
	t.Logf("alerts: %v", names)
}

// balanced checks parentheses, brackets and braces, outside quotes.
func balanced(expr string) string {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inQuote := false
	for _, c := range expr {
		switch {
		case c == '"':
			inQuote = !inQuote
		case inQuote:
		case c == '(' || c == '[' || c == '{':
			stack = append(stack, c)
		case pairs[c] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
				return "unbalanced " + string(c)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if inQuote || len(stack) > 0 {
		return "unclosed bracket or quote"
	}
	return ""
}
