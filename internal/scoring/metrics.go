package scoring

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	decisions    *prometheus.CounterVec
	bans         *prometheus.CounterVec
	score        prometheus.Histogram
	llmQuestions prometheus.Counter
	llmVerdicts  *prometheus.CounterVec
	llmFailures  *prometheus.CounterVec
	storeErrors  *prometheus.CounterVec
}

// LLM failure reasons: a closed set.
const (
	llmFailError     = "error"
	llmFailTimeout   = "timeout"
	llmFailInvalid   = "invalid"
	llmFailQueueFull = "queue_full"
	llmFailBan       = "ban"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartlayer_behavior_decisions_total",
			Help: "Behaviour decisions by reason (allow, grey, or a behavior.* deny reason).",
		}, []string{"reason"}),
		bans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartlayer_behavior_bans_total",
			Help: "Bans issued, by reason.",
		}, []string{"reason"}),
		score: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "smartlayer_behavior_score",
			Help:    "Suspicion scores of scored requests (past the grace period).",
			Buckets: []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20},
		}),
		llmQuestions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartlayer_behavior_llm_questions_total",
			Help: "Grey-zone clients queued for an LLM verdict.",
		}),
		llmVerdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartlayer_behavior_llm_verdicts_total",
			Help: "Valid LLM verdicts by action (allow, block, block_low_confidence).",
		}, []string{"action"}),
		llmFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartlayer_behavior_llm_failures_total",
			Help: "LLM questions that gave no usable verdict (error, timeout, invalid, queue_full, ban); the client is not banned.",
		}, []string{"reason"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartlayer_behavior_store_errors_total",
			Help: "Behaviour store calls that failed, by operation.",
		}, []string{"op"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.decisions, m.bans, m.score, m.llmQuestions, m.llmVerdicts, m.llmFailures, m.storeErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
