package payload

import "unsafe"

// Detector-major inspection. A request's values each walk ~20 detectors,
// and together those detectors' code is larger than the CPU's 32 KiB L1
// instruction cache: running all of them on one value, then all on the
// next, reloaded every detector's code for every value. Cachegrind
// counted 11,400 L1i misses per BenchmarkInspect/json_8k request
// (6d9bc3a: 1,800) and 1,340 per /get (490); at 1.10x and 1.05x
// 6d9bc3a's instructions they cost 1.35x and 1.24x its CPU time.
//
// So the first pass over a request only decodes its values and queues
// them (normalised, lowercased, classified) in scan.batch; every
// batchSize values or checkCost units of work, and at the end, each
// detector runs over the whole
// queue in turn (anyHit), its code loaded once per batch. A clean
// request, the common case, is then done: its result has no findings.
// When a detector fires, the pass stops and the request is inspected
// again value by value (detect, runDetectors), which records findings,
// locations, exclusions and memos exactly as before; an attack costs its
// first batches twice. Requests with payload.exclusions for their path
// are inspected value by value from the start (a hit there may be
// waived). TestBatchMatchesDirect compares both ways on the test corpora,
// TestFastPathsRandom anyHit with runDetectors.
const batchSize = 32

// pending is a value queued for the detectors.
type pending struct {
	norm, lower  string
	cls          uint64
	l            layers
	prefix, name string
	key          bool
}

// stopBatch is the budget's hit while a batched pass gives way to a
// value-by-value one; restart clears it.
const stopBatch = "batch-hit"

// queue adds a decoded value to the batch; lower may live in lowerBuf,
// so it is copied to s.arena (reset with the batch).
func (s *scan) queue(norm, lower string, cls uint64, l layers, prefix, name string, key bool) {
	if len(lower) > 0 && len(s.lowerBuf) > 0 && unsafe.StringData(lower) == &s.lowerBuf[0] {
		start := len(s.arena)
		s.arena = append(s.arena, lower...)
		lower = unsafe.String(&s.arena[start], len(lower))
	}
	s.batch = append(s.batch, pending{norm: norm, lower: lower, cls: cls, l: l, prefix: prefix, name: name, key: key})
	// A batch also ends after checkCost units of detector work, so that
	// the budget's clock (read every checkCost units, before the next
	// value) trails the work done by one batch of at most that much.
	s.batchCost += detectorCost(len(norm), cls)
	if len(s.batch) >= batchSize || s.batchCost >= checkCost {
		s.flush()
	}
}

// flush runs the detectors over the batch; on a hit it stops the pass
// (stopBatch) so run can start the value-by-value one.
func (s *scan) flush() {
	if len(s.batch) == 0 {
		return
	}
	if anyHit(s.batch) {
		s.batchHit = true
		if s.b.hit == "" {
			s.b.hit = stopBatch
		}
	}
	clear(s.batch) // drop the strings
	s.batch, s.batchCost = s.batch[:0], 0
	// The arena's strings are gone with the batch; a reallocated arena
	// left its old array to the strings that pointed into it.
	s.arena = s.arena[:0]
}

// anyHit reports whether any detector fires on any value of b: the
// detectors of runDetectors, each over all of b before the next.
//
// A stage with a need mask is called only for values with one of those
// classes (the stage's own first test, so exact), without a call:
// BenchmarkInspect/get went from 88,150 to 85,900 instructions per
// request with it (callgrind).
func anyHit(b []pending) bool {
	for si := range stages {
		st := &stages[si]
		for i := range b {
			if (st.need == 0 || b[i].cls&st.need != 0) && st.hit(&b[i]) {
				return true
			}
		}
	}
	return false
}

// stage is one of anyHit's detectors: need, when not 0, are the classes
// without which hit is false.
type stage struct {
	need uint64
	hit  func(p *pending) bool
}

// stages are runDetectors' detectors with the same gates, one function
// each: true when the detector gives the value any weight.
var stages = [...]stage{
	{0, func(p *pending) bool { return detectSQLi(p.norm, p.lower, p.cls, p.key).w > 0 }},
	{xssClasses, func(p *pending) bool {
		return p.cls&xssClasses != 0 && detectXSS(p.norm, p.lower, p.cls).w > 0
	}},
	{0, func(p *pending) bool { return detectShell(p.norm, p.lower, p.cls, p.key).w > 0 }},
	{cDot | cSlash | cBackslash, func(p *pending) bool {
		return p.cls&(cDot|cSlash|cBackslash) != 0 && detectTraversal(p.lower, p.cls, p.prefix == locPath).w > 0
	}},
	{newFamilyClasses, func(p *pending) bool {
		cls := p.cls
		if cls&newFamilyClasses == 0 {
			return false
		}
		return cls&cDollar != 0 && cls&cBrace != 0 && detectJNDI(p.lower, cls).w > 0 ||
			cls&cDollar != 0 && detectNoSQLi(p.lower, cls, p.key).w > 0 ||
			cls&(cBrace|cLT|cParen|cQuestion) != 0 && detectSSTI(p.lower, cls).w > 0 ||
			cls&cParen != 0 && cls&(cEq|cStar|cPipe|cAmp) != 0 && detectLDAPi(p.lower, cls).w > 0 ||
			detectCRLF(p.lower, cls).w > 0 ||
			cls&cNewline != 0 && (p.key || p.prefix == locPath) ||
			cls&cColon != 0 && cls&cSlash != 0 && detectPHPWrapper(p.lower, cls).w > 0
	}},
	{cDot | cColon, func(p *pending) bool { return p.cls&(cDot|cColon) != 0 && detectSSRF(p.lower, p.cls).w > 0 }},
	{nodeClasses, func(p *pending) bool {
		return p.cls&nodeClasses != 0 && detectNode(p.lower, p.cls).w > 0
	}},
	{cSlash | cQuestion | cColon, func(p *pending) bool {
		l := p.lower
		return p.cls&cSlash != 0 && len(l) >= 7 && bareHostFirst[l[0]] && detectBareHost(l).w > 0 ||
			p.cls&(cQuestion|cColon) != 0 && len(l) >= 4 && (l[0] == 'd' || l[0] == 'h' || l[len(l)-1] == '?') && ssrfShapes(l).w > 0 ||
			// runDetectors also asks that SSRF has not blocked already:
			// here it would have returned true before this stage.
			p.cls&cColon != 0 && !p.key && p.name != "" && (l[0] == 'h' || l[0] == 'f') && remoteIncludeParam(p.name, l).w > 0
	}},
	{deserClasses, func(p *pending) bool {
		return p.cls&deserClasses != 0 && detectDeserialization(p.norm, p.lower, p.cls, p.key).w > 0
	}},
	{promptNeed(), func(p *pending) bool {
		return (p.cls&promptClasses != 0 || prompts.walkAlways) && prompts.match(p.lower, p.cls) > 0
	}},
	{0, func(p *pending) bool {
		l := p.l
		return l.null || (l.overlong || l.percentU || l.url >= 2 || l.escapes) && encodingTrick(l, p.cls, p.lower).w > 0
	}},
}

// The gates runDetectors and the stages share.
const (
	xssClasses    = cLT | cGT | cEq | cBacktick | cColon | cParen | cBracket | kwDOM | cDash
	nodeClasses   = cUnderscore | cDot | cBracket | cParen | cDollar
	promptClasses = kwPrompt | cLT | cNonASCII | cBracket
)

// promptNeed is the prompt stage's need: none when a first word escapes
// the kwPrompt gate (prompts.walkAlways).
func promptNeed() uint64 {
	if prompts.walkAlways {
		return 0
	}
	return promptClasses
}

// restart readies the scan for the value-by-value pass after a batched
// one found something: the pass's state goes, the budget starts over
// (its deadline and heavy slot stay).
func (s *scan) restart() {
	s.batching, s.batchHit = false, false
	s.findings, s.suspects = nil, s.suspects[:0]
	s.weights = [numDetectors]uint8{}
	s.rules = [numDetectors]string{}
	for _, m := range s.clean {
		clear(m)
	}
	cache := s.hdr.cache
	s.hdr.reset()
	s.hdr.cache = cache
	s.urlDepth = 0
	excl := s.ch.excl
	s.ch.reset()
	s.ch.excl = excl
	s.b.restart()
}
