package prom

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollectorsKeepNameHelpAndLabels(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c := Counter("t_counter_total", "A counter.")
	cv := CounterVec("t_counter_vec_total", "A counter vec.", "a", "b")
	g := Gauge("t_gauge", "A gauge.")
	gv := GaugeVec("t_gauge_vec", "A gauge vec.", "a")
	h := Histogram("t_hist_seconds", "A histogram.", []float64{1, 2})
	hv := HistogramVec("t_hist_vec_seconds", "A histogram vec.", []float64{1}, "a")
	if err := Register(reg, c, cv, g, gv, h, hv); err != nil {
		t.Fatal(err)
	}
	c.Inc()
	cv.WithLabelValues("x", "y").Add(2)
	g.Set(3)
	gv.WithLabelValues("x").Set(4)
	h.Observe(1.5)
	hv.WithLabelValues("x").Observe(0.5)
	want := `
# HELP t_counter_total A counter.
# TYPE t_counter_total counter
t_counter_total 1
# HELP t_counter_vec_total A counter vec.
# TYPE t_counter_vec_total counter
t_counter_vec_total{a="x",b="y"} 2
# HELP t_gauge A gauge.
# TYPE t_gauge gauge
t_gauge 3
# HELP t_gauge_vec A gauge vec.
# TYPE t_gauge_vec gauge
t_gauge_vec{a="x"} 4
# HELP t_hist_seconds A histogram.
# TYPE t_hist_seconds histogram
t_hist_seconds_bucket{le="1"} 0
t_hist_seconds_bucket{le="2"} 1
t_hist_seconds_bucket{le="+Inf"} 1
t_hist_seconds_sum 1.5
t_hist_seconds_count 1
# HELP t_hist_vec_seconds A histogram vec.
# TYPE t_hist_vec_seconds histogram
t_hist_vec_seconds_bucket{a="x",le="1"} 1
t_hist_vec_seconds_bucket{a="x",le="+Inf"} 1
t_hist_vec_seconds_sum{a="x"} 0.5
t_hist_vec_seconds_count{a="x"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestRegisterStopsAtTheFirstError(t *testing.T) {
	if err := Register(nil, Counter("t_total", "x")); err != nil {
		t.Fatalf("nil registerer: %v", err)
	}
	reg := prometheus.NewRegistry()
	a, b, c := Counter("t_total", "x"), Counter("t_total", "x"), Counter("t_other_total", "y")
	if err := Register(reg, a, b, c); err == nil {
		t.Fatal("duplicate registration: no error")
	}
	if reg.Unregister(c) {
		t.Fatal("a collector after the failing one was registered")
	}
}

// A Child counts in its vector's series, which appears only once counted.
func TestChild(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	cv := CounterVec("t_child_total", "A counter vec.", "a", "b")
	if err := Register(reg, cv); err != nil {
		t.Fatal(err)
	}
	ch := NewChild(cv, "x", "")
	if n := testutil.CollectAndCount(cv); n != 0 {
		t.Fatalf("%d series before the first Inc, want 0", n)
	}
	ch.Inc()
	ch.Inc()
	cv.WithLabelValues("x", "").Inc()
	if got := testutil.ToFloat64(cv.WithLabelValues("x", "")); got != 3 {
		t.Fatalf("counter = %v, want 3", got)
	}
	if n := testutil.CollectAndCount(cv); n != 1 {
		t.Fatalf("%d series, want 1", n)
	}
}
