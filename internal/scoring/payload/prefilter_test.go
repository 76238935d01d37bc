package payload

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	libinjection "github.com/corazawaf/libinjection-go"
)

// TestPrefilterSound checks the gates in front of libinjection on random
// input built from the characters and words that matter to it: whenever
// a gate says "skip", libinjection must indeed find nothing.
func TestPrefilterSound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pieces := []string{
		"a", "Z", "1", "0x1f", "1e5", " ", " ", "  ", "-", "/", ".", ",", ":", "+", "%", "?", "_", "~", "^",
		"{", "}", "[", "]", "é", "日", "=", "'", "\"", "(", ")", ";", "&", "#", "*", "@", "|", "!", "$", "\\",
		"--", "/*", "#", "#5", " #x", "# ", "null", "true", "select", "union", "or", "and", "having", "order by", "sleep", "exec",
		"on", "onerror", "onload", "style", "src", "href", "javascript:", "alert(1)", "expression(", "x",
		"ref", "utm_source", "\t", "\n", "\x01", "\x0c", "data:", "xmlns", "srcdoc", "formaction", "background",
	}
	var words []string
	for w := range sqlWords {
		words = append(words, w)
	}
	slices.Sort(words)
	const n = 400000
	var skippedSQL, skippedXSS int
	for range n {
		var b strings.Builder
		for range 1 + r.IntN(10) {
			if r.IntN(8) == 0 {
				w := words[r.IntN(len(words))]
				if r.IntN(2) == 0 {
					w = strings.ToUpper(w)
				}
				b.WriteString(w)
				continue
			}
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		s := b.String()
		lower := strings.ToLower(s)
		cls := classes(s)
		if !sqliGate(lower, cls) {
			skippedSQL++
			if hit, fp := libinjection.IsSQLi(s); hit {
				t.Errorf("sqli gate skipped %q, libinjection says %s", s, fp)
			}
		}
		if !xssGate(lower, cls) {
			skippedXSS++
			if libinjection.IsXSS(stripControls(s)) {
				t.Errorf("xss gate skipped %q, libinjection flags it", s)
			}
		}
	}
	t.Logf("%d random values: sqli gate skipped %d, xss gate skipped %d", n, skippedSQL, skippedXSS)
}
