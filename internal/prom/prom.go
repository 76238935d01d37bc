// Package prom declares Prometheus collectors in one line each: the full
// metric name, its help and its labels, without the Opts boilerplate.
package prom

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Counter is a counter without labels.
func Counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

// CounterVec is a counter partitioned by labels.
func CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// Gauge is a gauge without labels.
func Gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

// GaugeVec is a gauge partitioned by labels.
func GaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

// Histogram is a histogram without labels.
func Histogram(name, help string, buckets []float64) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
}

// HistogramVec is a histogram partitioned by labels.
func HistogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
}

// Register adds cs to reg in order and returns the first error; a nil reg
// registers nothing.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Child is one label combination of a CounterVec, looked up on its first
// Inc and kept: WithLabelValues hashes the values and takes the vector's
// lock on every call, which the request path pays on every Check. Until
// the first Inc the series does not exist, as with WithLabelValues.
type Child struct {
	vec    *prometheus.CounterVec
	values []string
	c      atomic.Pointer[counter]
}

type counter struct{ prometheus.Counter }

// NewChild returns vec's child for values (one per label, in order).
func NewChild(vec *prometheus.CounterVec, values ...string) *Child {
	return &Child{vec: vec, values: values}
}

// Inc adds one to the child's counter.
func (c *Child) Inc() {
	p := c.c.Load()
	if p == nil {
		// Two first calls at once both look it up: the same counter.
		p = &counter{c.vec.WithLabelValues(c.values...)}
		c.c.Store(p)
	}
	p.Inc()
}
