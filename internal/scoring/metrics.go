package scoring

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/prom"
)

type metrics struct {
	decisions *prometheus.CounterVec
	// allowed and grey: the decisions of nearly every Check, looked up
	// once (prom.Child).
	allowed, grey *prom.Child
	bans          *prometheus.CounterVec
	score         prometheus.Histogram
	llmQuestions  prometheus.Counter
	llmVerdicts   *prometheus.CounterVec
	llmFailures   *prometheus.CounterVec
	storeErrors   *prometheus.CounterVec
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
		decisions: prom.CounterVec("smartlayer_behavior_decisions_total",
			"Behaviour decisions by reason (allow, grey, or a behavior.* deny reason).", "reason"),
		bans: prom.CounterVec("smartlayer_behavior_bans_total", "Bans issued, by reason.", "reason"),
		score: prom.Histogram("smartlayer_behavior_score",
			"Suspicion scores of scored requests (past the grace period).",
			[]float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20}),
		llmQuestions: prom.Counter("smartlayer_behavior_llm_questions_total", "Grey-zone clients queued for an LLM verdict."),
		llmVerdicts: prom.CounterVec("smartlayer_behavior_llm_verdicts_total",
			"Valid LLM verdicts by action (allow, block, block_low_confidence).", "action"),
		llmFailures: prom.CounterVec("smartlayer_behavior_llm_failures_total",
			"LLM questions that gave no usable verdict (error, timeout, invalid, queue_full, ban); the client is not banned.", "reason"),
		storeErrors: prom.CounterVec("smartlayer_behavior_store_errors_total",
			"Behaviour store calls that failed, by operation.", "op"),
	}
	m.allowed, m.grey = prom.NewChild(m.decisions, "allow"), prom.NewChild(m.decisions, "grey")
	if err := prom.Register(reg, m.decisions, m.bans, m.score, m.llmQuestions, m.llmVerdicts, m.llmFailures, m.storeErrors); err != nil {
		return nil, err
	}
	return m, nil
}
