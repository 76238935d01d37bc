package eval

// Class is an engine's answer to one request.
type Class int

const (
	Passed Class = iota
	// Borderline: allowed, but the payload score is above 0 (smartlayer
	// only: these are the requests an LLM would be asked about).
	Borderline
	Blocked
	// Error: the engine could not decide (fail mode, parse error).
	Error
)

func (c Class) String() string {
	switch c {
	case Borderline:
		return "borderline"
	case Blocked:
		return "blocked"
	case Error:
		return "error"
	}
	return "passed"
}

// Verdict is one engine's answer.
type Verdict struct {
	Class  Class
	Score  int
	Reason string
	// Rules lists the rule ids that matched (Coraza only).
	Rules []int
}

// Matched reports whether rule id is among v.Rules.
func (v *Verdict) Matched(id int) bool {
	for _, r := range v.Rules {
		if r == id {
			return true
		}
	}
	return false
}
