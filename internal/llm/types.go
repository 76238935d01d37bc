package llm

import "time"

// Action is a client verdict.
type Action string

const (
	ActionBlock Action = "BLOCK"
	ActionAllow Action = "ALLOW"
)

func (a Action) String() string { return string(a) }

// Health is the overall judgement of a daily report.
type Health string

const (
	HealthGood     Health = "good"
	HealthDegraded Health = "degraded"
	HealthCritical Health = "critical"
)

func (h Health) String() string { return string(h) }

// Category is the attack class of a payload verdict; CategoryNone exactly
// when the payload is not malicious.
type Category string

const (
	CategoryNone            Category = "none"
	CategorySQLi            Category = "sqli"
	CategoryXSS             Category = "xss"
	CategoryPathTraversal   Category = "path_traversal"
	CategoryShellInjection  Category = "shell_injection"
	CategoryPromptInjection Category = "prompt_injection"
	CategoryNullByte        Category = "null_byte"
	CategoryEncoding        Category = "encoding_evasion"
	CategoryOther           Category = "other"
)

func (c Category) String() string { return string(c) }

// Categories lists every valid Category, CategoryNone first.
var Categories = []Category{
	CategoryNone, CategorySQLi, CategoryXSS, CategoryPathTraversal, CategoryShellInjection,
	CategoryPromptInjection, CategoryNullByte, CategoryEncoding, CategoryOther,
}

// RequestLine is one recent request of a client, as the behaviour stage saw it.
type RequestLine struct {
	Method string `json:"method"`
	// Path is untrusted (attacker-chosen); the prompt carries it as data.
	Path string `json:"path"`
	// Status is the response status when known (from the access log), else 0.
	Status int `json:"status,omitempty"`
}

// ClientSummary is what the behaviour stage knows about a grey-zone client.
// All strings are treated as untrusted data in the prompt.
type ClientSummary struct {
	// Client is the client key (IP, or user id for authenticated callers).
	Client string `json:"client"`
	Plan   string `json:"plan,omitempty"`
	// UserAgent as sent by the client (untrusted).
	UserAgent string `json:"user_agent"`
	// Score is the behaviour score; Signals the rules that added to it
	// (e.g. "behavior.sensitive_path").
	Score   int      `json:"score"`
	Signals []string `json:"signals"`
	// Window is the span the counters cover.
	Window time.Duration `json:"-"`
	// Requests, Errors and DistinctPaths count the client's traffic in Window.
	Requests      int `json:"requests"`
	Errors        int `json:"errors"`
	DistinctPaths int `json:"distinct_paths"`
	// Recent are the latest requests, newest last; the prompt keeps the last
	// maxRecentLines.
	Recent []RequestLine `json:"recent_requests,omitempty"`
}

// ClientVerdict is the model's judgement of a client.
type ClientVerdict struct {
	Action     Action  `json:"action"`
	Confidence float64 `json:"confidence"`
	Reason     string  `json:"reason"`
}

// PayloadSample is a borderline request payload for a second opinion.
type PayloadSample struct {
	Method string `json:"method"`
	// Path is untrusted.
	Path string `json:"path"`
	// Location says where the payload was found: "query", "body", "header:NAME", "path".
	Location    string `json:"location"`
	ContentType string `json:"content_type,omitempty"`
	// Payload is the decoded suspicious text (untrusted); the prompt keeps
	// the first maxPayloadBytes.
	Payload string `json:"payload"`
	// Detectors that fired (e.g. "payload.sqli") and the payload score.
	Detectors []string `json:"detectors"`
	Score     int      `json:"score"`
}

// PayloadVerdict is the model's judgement of a payload.
type PayloadVerdict struct {
	Malicious  bool     `json:"malicious"`
	Confidence float64  `json:"confidence"`
	Category   Category `json:"category"`
	Reason     string   `json:"reason"`
}

// Narrative is the model's prose for the daily report.
type Narrative struct {
	Health          Health   `json:"health"`
	Summary         string   `json:"summary"`
	Findings        []string `json:"findings"`
	Recommendations []string `json:"recommendations"`
}
