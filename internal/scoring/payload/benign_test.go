package payload

import (
	"bufio"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"testing"
)

type benignCase struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

func loadBenign(t testing.TB) []benignCase {
	t.Helper()
	f, err := os.Open("testdata/benign.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []benignCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var c benignCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("benign.jsonl: %v", err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// benignInput places a benign value where the API would receive it. Plain
// values alternate between a query parameter and a JSON body field.
func benignInput(t testing.TB, i int, c benignCase) *Input {
	ua := map[string]string{"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}
	switch c.Kind {
	case "json":
		return &Input{Path: "/api/items", Headers: ua, Body: []byte(c.Value), ContentType: "application/json"}
	case "form":
		return &Input{Path: "/contact", Headers: ua, Body: []byte(c.Value), ContentType: "application/x-www-form-urlencoded"}
	case "ua":
		return &Input{Path: "/", Headers: map[string]string{"user-agent": c.Value}}
	case "referer":
		return &Input{Path: "/items/42", Headers: map[string]string{"user-agent": ua["user-agent"], "referer": c.Value}}
	}
	if i%2 == 0 {
		return &Input{Path: "/search", RawQuery: "q=" + url.QueryEscape(c.Value) + "&page=2", Headers: ua}
	}
	b, err := json.Marshal(map[string]any{"value": c.Value, "n": i})
	if err != nil {
		t.Fatal(err)
	}
	return &Input{Path: "/api/notes", Headers: ua, Body: b, ContentType: "application/json; charset=utf-8"}
}

// TestBenignCorpus: at most 0.5 % of realistic benign traffic may be
// blocked. Borderline values only cost an LLM ask (cached per payload);
// their share is printed for tuning.
func TestBenignCorpus(t *testing.T) {
	cases := loadBenign(t)
	if len(cases) < 2000 {
		t.Fatalf("benign corpus has %d values, want >= 2000", len(cases))
	}
	v := newTestValidator(t, DefaultConfig())
	var blocked, border int
	byKind := map[string][2]int{}
	for i, c := range cases {
		res := v.Inspect(context.Background(), benignInput(t, i, c))
		k := byKind[c.Kind]
		switch {
		case res.Action == Block:
			blocked++
			k[0]++
			t.Logf("blocked %s %q: %s %+v", c.Kind, c.Value, res.Reason, res.Findings)
		case res.Borderline:
			border++
			k[1]++
			if testing.Verbose() {
				t.Logf("borderline %s %q: %+v", c.Kind, c.Value, res.Findings)
			}
		}
		byKind[c.Kind] = k
	}
	n := float64(len(cases))
	t.Logf("benign: %d values, blocked %d (%.2f%%), borderline %d (%.2f%%)", len(cases), blocked, 100*float64(blocked)/n, border, 100*float64(border)/n)
	for k, c := range byKind {
		t.Logf("  %-8s blocked %d, borderline %d", k, c[0], c[1])
	}
	if got := float64(blocked) / n; got > 0.005 {
		t.Errorf("blocked %.2f%% of benign values, want <= 0.5%%", 100*got)
	}
}
