// Package payload inspects request content for attacks: SQL injection and
// XSS (libinjection plus our own rules), path traversal, shell injection,
// Log4Shell/JNDI lookups, server-side template injection, NoSQL operators,
// LDAP filter injection, SSRF, CRLF/header injection, PHP stream wrappers,
// serialised objects, prompt injection, NUL bytes and encoding tricks — the
// families of OWASP CRS paranoia level 1, in plain Go behind byte-class
// and keyword pre-filters (RE2 regexps only on candidates). It ports
// django-smart-layer's AIRequestValidator: each detector adds a weight; 0
// allows, 1..BlockScore-1 is borderline and may be sent to an LLM,
// BlockScore and above blocks. An unambiguous attack weighs weightBlock on
// its own; every hit names its rule (Finding.Rule, Result.Rule).
//
// Stage 1 (Inspect's detectors) is pure, in-process CPU work. Stage 2 asks
// the LLM through the Verdicts interface declared here; it never blocks a
// request on an LLM failure.
package payload

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
)

// Input is the part of a request the validator reads. Header names are
// lowercased; Path and RawQuery are still URL-encoded as received.
type Input struct {
	Path     string
	RawQuery string
	Headers  map[string]string
	Body     []byte
	// ContentType is the content-type header; when empty,
	// Headers["content-type"] is used.
	ContentType string
	// Client is an opaque client key (IP or user) handed back in
	// VerdictEvent so the caller can ban whoever sent a payload that the
	// background LLM ask later found malicious. Not inspected.
	Client string
	// PartialBody: Body is only the start of the request's body (Envoy
	// cut it: x-envoy-auth-partial-body, or the caller's own cap). The
	// header itself in Headers counts too. See payload.partial_body.
	PartialBody bool
}

// Action is the validator's decision.
type Action uint8

const (
	Allow Action = iota
	Block
)

func (a Action) String() string {
	if a == Block {
		return "block"
	}
	return "allow"
}

// Reasons, one per detector plus one for LLM verdicts. The set is closed:
// these are metric labels and the "reason" in deny responses.
const (
	ReasonSQLi            = "payload.sqli"
	ReasonXSS             = "payload.xss"
	ReasonShellInjection  = "payload.shell_injection"
	ReasonPathTraversal   = "payload.path_traversal"
	ReasonPromptInjection = "payload.prompt_injection"
	ReasonNullByte        = "payload.null_byte"
	ReasonEncodingTrick   = "payload.encoding_trick"
	// Families beyond the original detectors (issue 16).
	ReasonJNDI            = "payload.jndi"            // Log4Shell-style ${jndi:…} lookups
	ReasonSSTI            = "payload.ssti"            // server-side template injection
	ReasonNoSQLi          = "payload.nosqli"          // MongoDB operators in keys or values
	ReasonLDAPi           = "payload.ldapi"           // LDAP filter injection
	ReasonSSRF            = "payload.ssrf"            // metadata endpoints, dangerous URL schemes
	ReasonCRLF            = "payload.crlf"            // CR/LF followed by a response header
	ReasonPHPWrapper      = "payload.php_wrapper"     // php://filter, phar://, expect://, data://
	ReasonDeserialization = "payload.deserialization" // Java/PHP/.NET serialised objects and gadgets
	// ReasonLLM: a borderline payload the LLM judged malicious (now, in
	// sync mode, or earlier, from the verdict cache).
	ReasonLLM = "payload.llm"
)

// Reasons lists every reason Inspect can return.
func Reasons() []string {
	return []string{ReasonSQLi, ReasonXSS, ReasonShellInjection, ReasonPathTraversal,
		ReasonJNDI, ReasonSSTI, ReasonNoSQLi, ReasonLDAPi, ReasonSSRF, ReasonCRLF,
		ReasonPHPWrapper, ReasonDeserialization,
		ReasonPromptInjection, ReasonNullByte, ReasonEncodingTrick, ReasonLLM,
		ReasonPartialBody, ReasonUndecodableCharset, ReasonTooComplex}
}

var detectorReasons = [numDetectors]string{
	detSQLi: ReasonSQLi, detXSS: ReasonXSS, detShell: ReasonShellInjection,
	detTraversal: ReasonPathTraversal, detPrompt: ReasonPromptInjection,
	detJNDI: ReasonJNDI, detSSTI: ReasonSSTI, detNoSQLi: ReasonNoSQLi, detLDAPi: ReasonLDAPi,
	detSSRF: ReasonSSRF, detCRLF: ReasonCRLF, detPHPWrapper: ReasonPHPWrapper,
	detDeserialization: ReasonDeserialization,
	detNull:            ReasonNullByte, detEncoding: ReasonEncodingTrick,
}

// Finding is one detector hit.
type Finding struct {
	// Detector is the detector name ("sqli", "path_traversal", …).
	Detector string
	// Location names where: "path", "query:q", "query-key:q",
	// "header:referer", "header:authorization.user",
	// "header:authorization.jwt:$.sub", "cookie:session", "body",
	// "body:$.a.b" (JSON, and XML: "body:$.root.el.@attr"),
	// "body-key:$.a.b", "body:field" and "body-key:field" (urlencoded and
	// multipart forms), "body-filename:field" (multipart file names),
	// "body:!DOCTYPE". payload.exclusions use these spellings.
	Location string
	// Excerpt is the start of the normalised value (at most 64 bytes).
	Excerpt string
	// Weight is what this hit is worth; a request's score adds up the
	// highest weight of each detector.
	Weight int
	// Rule is the stable name of the rule that fired, under the
	// detector's reason: "payload.sqli.union", "payload.cmdi.substitution",
	// "payload.ssrf.metadata", …
	Rule string
}

// LLMOutcome says what stage 2 did.
type LLMOutcome string

const (
	LLMNone        LLMOutcome = ""            // not borderline, or llm.mode off
	LLMQueued      LLMOutcome = "queued"      // async ask queued
	LLMDropped     LLMOutcome = "dropped"     // async queue full: not asked
	LLMPending     LLMOutcome = "pending"     // same payload already being asked
	LLMCached      LLMOutcome = "cached"      // verdict taken from the cache
	LLMAsked       LLMOutcome = "asked"       // sync ask answered in time
	LLMFailed      LLMOutcome = "failed"      // sync ask failed or timed out: fail open
	LLMUnavailable LLMOutcome = "unavailable" // no Verdicts configured
)

// Result is Inspect's answer.
type Result struct {
	Action Action
	// Score adds the highest weight of each detector that fired.
	Score int
	// Reason is empty when allowed; otherwise the strongest detector's
	// reason, or ReasonLLM.
	Reason string
	// Borderline: 0 < Score < BlockScore.
	Borderline bool
	// KnownMalicious: the LLM has judged this exact payload malicious
	// (verdict cache hit or sync verdict); the sender has been reported to
	// the WithMaliciousHook hook.
	KnownMalicious bool
	LLM            LLMOutcome
	// Confidence of the LLM verdict when one was used.
	Confidence float64
	// Rule is the strongest finding's rule (the one that named Reason's
	// detector); set whenever Score > 0, also for borderline results.
	Rule string
	// Findings lists detector hits (at most maxFindings).
	Findings []Finding
	// Excerpt is the normalised content of the fields with findings, as
	// "location: value" lines, truncated to payload.llm.max_excerpt; empty when
	// Score is 0. It is what stage 2 sends to the LLM.
	Excerpt string
	// Hash identifies the normalised suspicious content (hex, 128 bits);
	// set when Score > 0. Verdicts are cached under it.
	Hash string
	// BodyTruncated: the body was longer than MaxBodyBytes and only its
	// start was inspected.
	BodyTruncated bool
	// BodySkipped names why the body was not inspected: "multipart",
	// "binary", or "" when it was (or there was none).
	BodySkipped string
	// TooComplex names the payload.limits cap the inspection hit
	// (LimitValues, …, LimitShed) when it was cut short; what it then
	// decides follows payload.too_complex (budget.go).
	TooComplex string
}

const (
	maxFindings   = 16
	excerptLen    = 64
	maxLocNameLen = 64
)

// Location prefixes.
const (
	locPath     = "path"
	locQuery    = "query"
	locQueryKey = "query-key"
	locHeader   = "header"
	locCookie   = "cookie"
	locBody     = "body"
	locBodyKey  = "body-key"
)

// suspect is a field that produced a finding: it feeds Excerpt and Hash.
type suspect struct {
	loc  string
	norm string
}

// scan accumulates one Inspect call.
type scan struct {
	cfg      *Config
	weights  [numDetectors]uint8
	rules    [numDetectors]string // the rule behind each weight
	findings []Finding
	suspects []suspect
	jpath    jsonPath
	// clean remembers short values already found clean in this request:
	// arrays of records repeat their keys and many values, and detection
	// costs microseconds per value where a lookup costs nanoseconds.
	// Indexed by kind: key/value and '+' handling change what is
	// detected; keyed by location and name too, since detection reads
	// them (remoteIncludeParam: a URL is clean in a cookie named "a" and
	// an attack in a parameter named "include" — with the value alone as
	// the key, a cookie carrying the URL spared the parameter).
	// The value is the gen at insertion (see hdr).
	clean    [4]map[memoKey]uint32
	urlDepth int
	// ch is the channel parsers' state (channels.go).
	ch chanState
	// b accounts the work against payload.limits (budget.go).
	b budget
	// lowerBuf holds detect's lowercased value (toLower).
	lowerBuf []byte
	// batching: values are queued in batch for the detectors (batch.go);
	// batchHit: one fired, the pass stops for a value-by-value one.
	batching, batchHit bool
	direct             bool // never batch (Validator.direct)
	batch              []pending
	batchCost          int    // detectorCost of the batch
	arena              []byte // the batch's lowercased values
	// hdr: the cross-request cache of clean headers (hdrcache.go).
	hdr hdrState
}

// hdrState is one request's use of the header cache.
type hdrState struct {
	cache *headerCache // nil: off
	// add are the headers inspected here that Inspect caches if the
	// whole request is clean; the strings are the request's.
	add []headerPair
	// gen numbers the cached-candidate header being inspected; memo
	// entries record it. tainted: a memo entry from before this header
	// spared one of its values, so its verdict was not reached from the
	// header alone (the memo ignores the location; detection does not).
	gen     uint32
	tainted bool
	// waived: an exclusion waived a hit or a denial in this request.
	waived       bool
	hits, misses int
}

// reset empties the state, keeping the add slice's array.
func (h *hdrState) reset() {
	clear(h.add)
	*h = hdrState{add: h.add[:0]}
}

const maxMemoLen = 128

// memoKey is a value's place in the clean memo: where it was, under which
// name, and the raw value.
type memoKey struct{ prefix, name, raw string }

// maxKeptLowerBuf bounds the lowercase buffer a pooled scan keeps.
const maxKeptLowerBuf = 64 << 10

func (s *scan) reset() {
	s.findings, s.suspects = nil, s.suspects[:0]
	s.weights = [numDetectors]uint8{}
	s.rules = [numDetectors]string{}
	for _, m := range s.clean {
		clear(m)
	}
	s.hdr.reset()
	if cap(s.lowerBuf) > maxKeptLowerBuf {
		s.lowerBuf = nil // a pooled scan keeps no huge value's buffer
	}
	s.batching, s.batchHit, s.urlDepth = false, false, 0
	clear(s.batch)
	s.batch, s.batchCost = s.batch[:0], 0
	if cap(s.arena) > maxKeptLowerBuf {
		s.arena = nil
	}
	s.arena = s.arena[:0]
	s.ch.reset()
}

// field inspects one value. prefix/name (or jp for JSON) name the
// location, built only on a finding. plus: '+' means space.
func (s *scan) field(prefix, name string, jp *jsonPath, raw string, plus bool) string {
	if raw == "" || !s.b.value() {
		return raw
	}
	key := prefix == locQueryKey || prefix == locBodyKey
	var kind int
	if key {
		kind |= 1
	}
	if plus {
		kind |= 2
	}
	clean := s.clean[kind]
	memo := len(raw) <= maxMemoLen && prefix != locPath
	mk := memoKey{prefix: prefix, name: name, raw: raw}
	if memo {
		if g, ok := clean[mk]; ok {
			if g != s.hdr.gen {
				s.hdr.tainted = true
			}
			return raw // clean, and a clean key's location name needs no decoding
		}
	}
	if !key && s.urlDepth < maxURLDepth && isPlainURL(raw) {
		before := len(s.suspects)
		s.urlDepth++
		s.url(prefix, name, jp, raw)
		s.urlDepth--
		if memo && len(s.suspects) == before {
			clean[mk] = s.hdr.gen
		}
		return raw
	}
	norm, hit := s.detect(prefix, name, jp, raw, plus, key)
	if memo && !hit {
		clean[mk] = s.hdr.gen
	}
	return norm
}

// maxURLDepth bounds URLs inside URL parameters inside URLs.
const maxURLDepth = 2

// isPlainURL reports an http(s) URL made only of characters that carry no
// meaning to SQL, HTML or a shell outside its query values; such a URL is
// inspected part by part (see url) instead of whole.
func isPlainURL(s string) bool {
	if len(s) < 8 || len(s) > 8192 {
		return false
	}
	if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !urlSafe[s[i]] {
			return false
		}
	}
	return true
}

var urlSafe = func() (t [256]bool) {
	for _, c := range []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/?#[]@&+,=%") {
		t[c] = true
	}
	return t
}()

// url inspects a plain URL as a server would read it: scheme, host and
// path as one value, then each query parameter name and value decoded on
// its own, then the fragment. libinjection on a whole URL sees "?a=1&b=2"
// as SQL-ish operators; on its parts it sees what an application would.
func (s *scan) url(prefix, name string, jp *jsonPath, raw string) {
	rest, frag, _ := strings.Cut(raw, "#")
	base, query, _ := strings.Cut(rest, "?")
	if query == "" && strings.HasSuffix(rest, "?") {
		base = rest // a bare trailing "?" is the RFI suffix trick, keep it
	}
	s.detect(prefix, name, jp, base, false, false)
	for query != "" {
		var part string
		part, query, _ = strings.Cut(query, "&")
		k, v, _ := strings.Cut(part, "=")
		s.field(prefix, name, jp, k, true)
		s.field(prefix, name, jp, v, true)
	}
	if frag != "" {
		s.detect(prefix, name, jp, frag, false, false)
	}
}

// detect normalises raw and runs every detector on it, recording
// findings. It returns the normalised value and whether anything fired.
func (s *scan) detect(prefix, name string, jp *jsonPath, raw string, plus, key bool) (string, bool) {
	if raw == "" || !s.b.decode(len(raw)) {
		return raw, false
	}
	norm, l := normalise(raw, plus)
	s.b.decodedMore(int(l.extra), len(norm))
	// lower lives in s.lowerBuf until the next value: no detector keeps
	// it (hits carry constant rule names; excerpts and suspects copy
	// norm). That spares an allocation per value with capitals.
	lower := toLower(norm, &s.lowerBuf)
	cls := classesAndKeywords(lower)
	if !s.b.detectors(len(norm), cls) {
		return norm, false
	}
	if s.batching {
		s.queue(norm, lower, cls, l, prefix, name, key)
		return norm, false
	}

	w := runDetectors(norm, lower, cls, l, prefix, name, key)

	found := false
	for _, x := range w {
		if x.w > 0 {
			found = true
			break
		}
	}
	if !found {
		return norm, false
	}
	loc := prefix
	switch {
	case jp != nil:
		loc = prefix + ":" + jp.String()
	case name == raw:
		// A key names itself: show it decoded.
		loc = prefix + ":" + truncateUTF8(norm, maxLocNameLen)
	case name != "":
		loc = prefix + ":" + truncateUTF8(name, maxLocNameLen)
	}
	if s.ch.excl != nil {
		s.hdr.waived = true // clean or not, not without the exclusion
		if s.waive(loc, &w) {
			return norm, true // waived here, but not clean: no memo
		}
	}
	ex := strings.Clone(truncateUTF8(norm, excerptLen))
	for d, x := range w {
		if x.w == 0 {
			continue
		}
		if x.w > s.weights[d] {
			s.weights[d], s.rules[d] = x.w, x.rule
		}
		if len(s.findings) < maxFindings {
			s.findings = append(s.findings, Finding{Detector: detectorNames[d], Location: loc, Excerpt: ex, Weight: int(x.w), Rule: x.rule})
		}
	}
	s.suspects = append(s.suspects, suspect{loc: loc, norm: strings.Clone(norm)})
	return norm, true
}

// runDetectors runs the detectors on one normalised value.
//
// Each detector is called only when the classes its own first test
// needs are present (the same test, hoisted: exact). Skipping the
// call keeps its code out of the instruction cache: a request's values
// walked ~20 detectors' code each, and L1i misses, not instructions,
// made BenchmarkInspect/get 1.27x 6d9bc3a's CPU time at 1.13x its
// instructions (cachegrind: I1 misses per request 492 at 6d9bc3a,
// 1,363 before this; calling them only on need barely moved it: 1,337). TestFastPathsRandom and FuzzFastPaths
// compare it with refRunDetectors, which calls every detector.
func runDetectors(norm, lower string, cls uint64, l layers, prefix, name string, key bool) [numDetectors]hit {
	var w [numDetectors]hit
	w[detSQLi] = detectSQLi(norm, lower, cls, key)
	if cls&xssClasses != 0 {
		w[detXSS] = detectXSS(norm, lower, cls)
	}
	w[detShell] = detectShell(norm, lower, cls, key)
	if cls&(cDot|cSlash|cBackslash) != 0 {
		w[detTraversal] = detectTraversal(lower, cls, prefix == locPath)
	}
	if cls&newFamilyClasses != 0 {
		if cls&cDollar != 0 {
			if cls&cBrace != 0 {
				w[detJNDI] = detectJNDI(lower, cls)
			}
			w[detNoSQLi] = detectNoSQLi(lower, cls, key)
		}
		if cls&(cBrace|cLT|cParen|cQuestion) != 0 {
			w[detSSTI] = detectSSTI(lower, cls)
		}
		if cls&cParen != 0 && cls&(cEq|cStar|cPipe|cAmp) != 0 {
			w[detLDAPi] = detectLDAPi(lower, cls)
		}
		w[detCRLF] = detectCRLF(lower, cls)
		if cls&cNewline != 0 && (key || prefix == locPath) {
			w[detCRLF] = mk(weightBlock, ruleCRLFName) // a line break in a parameter name or the path
		}
		if cls&cColon != 0 && cls&cSlash != 0 {
			w[detPHPWrapper] = detectPHPWrapper(lower, cls)
		}
	}
	if cls&(cDot|cColon) != 0 {
		w[detSSRF] = detectSSRF(lower, cls)
	}
	if cls&nodeClasses != 0 {
		w[detSSTI] = w[detSSTI].or(detectNode(lower, cls))
	}
	if cls&cSlash != 0 && len(lower) >= 7 && bareHostFirst[lower[0]] {
		w[detSSRF] = w[detSSRF].or(detectBareHost(lower))
	}
	if cls&(cQuestion|cColon) != 0 && len(lower) >= 4 && (lower[0] == 'd' || lower[0] == 'h' || lower[len(lower)-1] == '?') {
		w[detSSRF] = w[detSSRF].or(ssrfShapes(lower))
	}
	if cls&cColon != 0 && !key && name != "" && w[detSSRF].w < weightBlock && (lower[0] == 'h' || lower[0] == 'f') {
		w[detSSRF] = w[detSSRF].or(remoteIncludeParam(name, lower))
	}
	if cls&deserClasses != 0 {
		w[detDeserialization] = detectDeserialization(norm, lower, cls, key)
	}
	if cls&promptClasses != 0 || prompts.walkAlways {
		if pw := prompts.match(lower, cls); pw > 0 {
			w[detPrompt] = mk(pw, rulePromptPhrase)
		}
	}
	if l.null {
		w[detNull] = mk(weightBorderline, ruleNullByte)
	}
	if l.overlong || l.percentU || l.url >= 2 || l.escapes {
		w[detEncoding] = encodingTrick(l, cls, lower)
	}
	return w
}

// pairs inspects "a=b&c=d" style data (query strings, form bodies); names
// are inspected too, under keyPrefix.
func (s *scan) pairs(data string, sep byte, prefix, keyPrefix string, plus bool) {
	for data != "" {
		var part string
		if i := strings.IndexByte(data, sep); i >= 0 {
			part, data = data[:i], data[i+1:]
		} else {
			part, data = data, ""
		}
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		if sep == ';' {
			name = strings.TrimSpace(name)
		}
		dn := s.field(keyPrefix, name, nil, name, plus)
		s.field(prefix, dn, nil, value, plus)
	}
}

func (s *scan) headers(h map[string]string) {
	// Sorted, so Findings, Excerpt and Hash do not depend on map order.
	var buf [32]string
	names := buf[:0]
	for name := range h {
		if headerMatch(s.cfg.Headers, name) && !headerMatch(s.cfg.SkipHeaders, name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		s.header(name, h[name])
	}
}

// body inspects the body by content type (content, channels.go) and
// reports truncation and skips.
func (s *scan) body(in *Input, res *Result) {
	if len(in.Body) == 0 {
		return
	}
	ct := in.ContentType
	if ct == "" {
		ct = in.Headers["content-type"]
	}
	b := in.Body
	if len(b) > s.cfg.MaxBodyBytes {
		b = b[:s.cfg.MaxBodyBytes]
		res.BodyTruncated = true
	}
	if in.PartialBody || in.Headers[partialBodyHeader] == "true" {
		res.BodyTruncated = true
	}
	if res.BodyTruncated && s.cfg.PartialBody == PartialDeny {
		s.policy(policyPartialBody, locBody)
	}
	s.content(ct, b, "", 0, res)
}

func (s *scan) jsonVisit(p *jsonPath, isKey bool, v string) {
	if isKey {
		s.field(locBodyKey, "", p, v, false)
		return
	}
	s.field(locBody, "", p, v, false)
}

func isBinary(media string) bool {
	switch {
	case strings.HasPrefix(media, "image/"), strings.HasPrefix(media, "audio/"),
		strings.HasPrefix(media, "video/"), strings.HasPrefix(media, "font/"):
		return true
	}
	switch media {
	case "application/octet-stream", "application/zip", "application/gzip",
		"application/pdf", "application/grpc", "application/protobuf",
		"application/x-protobuf", "application/x-tar", "application/wasm":
		return true
	}
	return false
}

// stage1 runs the detectors and fills Score, Reason, Findings, Excerpt and
// Hash; Action is Block when Score reaches BlockScore.
func (s *scan) run(in *Input, maxExcerpt int) Result {
	// Detector-major first (batch.go), unless exclusions may waive hits.
	s.batching = s.ch.excl == nil && !s.direct
	res := s.pass(in, maxExcerpt)
	if !s.batchHit {
		return res
	}
	s.restart()
	return s.pass(in, maxExcerpt)
}

// pass is one inspection of the request: batched (s.batching) or value
// by value.
func (s *scan) pass(in *Input, maxExcerpt int) Result {
	var res Result
	if in.Path != "" {
		s.field(locPath, "", nil, in.Path, false)
	}
	if in.RawQuery != "" {
		s.pairs(in.RawQuery, '&', locQuery, locQueryKey, true)
	}
	s.headers(in.Headers)
	s.body(in, &res)
	if s.batching {
		s.flush()
		if s.batchHit {
			return res
		}
	}

	best := -1
	for d, w := range s.weights {
		res.Score += int(w)
		if w > 0 && (best < 0 || w > s.weights[best]) {
			best = d
		}
	}
	if res.Score == 0 && s.ch.deny == "" {
		return res
	}
	res.Findings = s.findings
	if best < 0 { // only a policy denial
		s.policyVerdict(&res)
		return res
	}
	res.Reason = detectorReasons[best]
	res.Rule = s.rules[best]
	res.Hash, res.Excerpt = digest(s.suspects, maxExcerpt)
	if res.Score >= s.cfg.BlockScore {
		res.Action = Block
	} else {
		res.Borderline = true
		res.Reason = ""
	}
	s.policyVerdict(&res)
	return res
}

// digest hashes the suspicious fields' full normalised content and renders
// the LLM excerpt from them.
func digest(sus []suspect, maxExcerpt int) (string, string) {
	h := sha256.New()
	var ex strings.Builder
	for _, su := range sus {
		h.Write([]byte(su.loc))
		h.Write([]byte{0})
		h.Write([]byte(su.norm))
		h.Write([]byte{0})
		if room := maxExcerpt - ex.Len(); room > len(su.loc)+3 {
			ex.WriteString(su.loc)
			ex.WriteString(": ")
			ex.WriteString(truncateUTF8(su.norm, room-len(su.loc)-3))
			ex.WriteByte('\n')
		}
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:16]), ex.String()
}
