package report

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNarrativeMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	fake := &fakeSummarizer{err: errors.New("down")}
	r, err := New(nopConn{}, DefaultConfig(), WithRegisterer(reg), WithSummarizer(fake))
	if err != nil {
		t.Fatal(err)
	}
	agg := &Aggregates{Date: "2026-11-20", Totals: Totals{Requests: 10}}
	r.cfg.analyse(agg)
	for _, opts := range []BuildOptions{{}, {NoLLM: true}, {}} {
		if _, err := r.Build(t.Context(), scenarioDay, agg, opts); err != nil {
			t.Fatal(err)
		}
	}
	fake.err, fake.answer = nil, Narrative{Health: agg.Health, Summary: "ok", Recommendations: []string{"a", "b"}}
	if _, err := r.Build(t.Context(), scenarioDay, agg, BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "smartlayer_report_narratives_total"); err != nil || n != 3 {
		t.Errorf("gathered %d series, %v", n, err)
	}
	tests := map[string]struct {
		source, reason string
		want           float64
	}{
		"errors":   {"deterministic", "error", 2},
		"disabled": {"deterministic", "disabled", 1},
		"used":     {"llm", "used", 1},
		"invalid":  {"deterministic", "invalid", 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := testutil.ToFloat64(r.metrics.narratives.WithLabelValues(tc.source, tc.reason)); got != tc.want {
				t.Errorf("narratives{%s,%s} = %g, want %g", tc.source, tc.reason, got, tc.want)
			}
		})
	}
}
