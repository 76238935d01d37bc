package payload

import (
	"bufio"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
)

//go:embed prompt_phrases.txt
var promptPhrasesText string

type phrase struct {
	words  []string
	text   string
	weight uint8
}

// phraseSet matches prompt-injection phrases word by word in one pass:
// each word of the value is looked up as a possible first word (a length
// and first-byte bitmap rejects most words before the map lookup).
type phraseSet struct {
	byFirst  map[string][]phrase
	firstLen [256]uint64
	// lastLen is firstLen for the first word's last byte: together they
	// turn most words away before the map lookup ("shop" starts like
	// "show"; on "https://shop.example.com/p/17" match cost 1,170
	// instructions with firstLen alone, 1,030 with both; callgrind).
	lastLen [256]uint64
	substr  []phrase // phrases that start with a non-letter or non-ASCII
	// walkAlways: some first word is not a keywordTable word (see
	// promptFirstWords), so kwPrompt cannot gate the word walk.
	walkAlways bool
}

var prompts = mustParsePhrases(promptPhrasesText)

func mustParsePhrases(text string) *phraseSet {
	p, err := parsePhrases(text)
	if err != nil {
		panic(err) // the embedded file is part of the build
	}
	return p
}

func parsePhrases(text string) (*phraseSet, error) {
	p := &phraseSet{byFirst: map[string][]phrase{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		ws, rest, ok := strings.Cut(line, " ")
		w, err := strconv.Atoi(ws)
		if !ok || err != nil || w < 1 || w > 9 {
			return nil, fmt.Errorf("prompt_phrases.txt line %d: want \"<weight 1-9> <phrase>\", got %q", n, line)
		}
		text := strings.ToLower(strings.TrimSpace(rest))
		ph := phrase{text: text, weight: uint8(w)}
		if c := text[0]; c < 'a' || c > 'z' {
			if c != '<' && c != '[' && c < 0x80 {
				// match only looks for substrings when one of these is present.
				return nil, fmt.Errorf("prompt_phrases.txt line %d: a phrase must start with a letter, '<', '[' or a non-ASCII character", n)
			}
			p.substr = append(p.substr, ph)
			continue
		}
		for i := 0; ; {
			st, en := nextWord(text, i)
			if st < 0 {
				break
			}
			ph.words = append(ph.words, text[st:en])
			i = en
		}
		first := ph.words[0]
		if len(first) >= 64 {
			return nil, fmt.Errorf("prompt_phrases.txt line %d: first word too long", n)
		}
		p.byFirst[first] = append(p.byFirst[first], ph)
		if !promptWord(first) {
			p.walkAlways = true
		}
		p.firstLen[first[0]] |= 1 << len(first)
		p.lastLen[first[len(first)-1]] |= 1 << len(first)
	}
	return p, sc.Err()
}

// promptWord reports whether a phrase's first word is one that
// classesAndKeywords sees as a word of its own wherever nextWord does:
// [a-z][a-z0-9_]*, shorter than wordKeyword's 32 bytes. Such a word,
// delimited by non-word bytes, is a word to both scans.
func promptWord(w string) bool {
	if len(w) == 0 || len(w) >= 32 || w[0] < 'a' || w[0] > 'z' {
		return false
	}
	for i := 1; i < len(w); i++ {
		if c := w[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// match returns the highest weight of a phrase found in lower; cls is
// classesAndKeywords(lower).
//
// The word walk runs only when cls has kwPrompt, i.e. when lower has a
// phrase's first word: on BenchmarkInspect/json_8k the walk cost 39,000
// instructions of 955,000 per request, on /get 5,400 of 94,000, nearly
// all on values with no first word (callgrind). TestFastPathsRandom and
// FuzzFastPaths compare match with matchAll.
func (p *phraseSet) match(lower string, cls uint64) uint8 {
	if cls&kwPrompt == 0 && !p.walkAlways {
		return p.matchSubstr(lower, cls)
	}
	return p.matchAll(lower, cls)
}

// matchSubstr is match without the word walk.
func (p *phraseSet) matchSubstr(lower string, cls uint64) uint8 {
	var w uint8
	// Substring phrases start with '<', '[' or a non-ASCII byte.
	if cls&(cLT|cNonASCII) != 0 || strings.IndexByte(lower, '[') >= 0 {
		for _, ph := range p.substr {
			if ph.weight > w && strings.Contains(lower, ph.text) {
				w = ph.weight
			}
		}
	}
	return w
}

// matchAll is match without the kwPrompt gate.
func (p *phraseSet) matchAll(lower string, cls uint64) uint8 {
	w := p.matchSubstr(lower, cls)
	for i := 0; i < len(lower); {
		st, en := nextWord(lower, i)
		if st < 0 {
			break
		}
		i = en
		if n := en - st; n >= 64 || p.firstLen[lower[st]]&p.lastLen[lower[en-1]]&(1<<n) == 0 {
			continue
		}
	cand:
		for _, ph := range p.byFirst[lower[st:en]] {
			if ph.weight <= w {
				continue
			}
			pos := en
			for _, word := range ph.words[1:] {
				s, e := nextWord(lower, pos)
				if s < 0 || lower[s:e] != word {
					continue cand
				}
				pos = e
			}
			w = ph.weight
		}
	}
	return w
}
