package payload

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestBatchMatchesDirect: the batched inspection (batch.go) answers
// exactly what the value-by-value one does, on the CRS attacks in every
// shape, the benign corpus, the benchmark requests, and random requests
// of many values with attacks among them (so that batches fill, and a
// hit lands mid-batch, in a later batch, or in none).
func TestBatchMatchesDirect(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LLM.Mode = LLMOff
	cfg.Limits = unlimited()
	batched, direct := newTestValidator(t, cfg), newTestValidator(t, cfg)
	direct.direct = true

	var ins []*Input
	for _, tc := range crsAttacks {
		for _, in := range crsShapes(tc) {
			ins = append(ins, in)
		}
	}
	for i, c := range loadBenign(t) {
		ins = append(ins, benignInput(t, i, c))
	}
	hdr := map[string]string{"user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		"referer": "https://www.google.com/search?q=wireless+headphones", "accept": "application/json", "cookie": "session=abc123; theme=dark"}
	ins = append(ins,
		&Input{Path: "/api/products/search", RawQuery: "q=wireless%20headphones&sort=-price&page=2&lang=en", Headers: hdr},
		&Input{Path: "/api/orders", Headers: hdr, ContentType: "application/json", Body: jsonBody(8192)},
		&Input{Path: "/api", Headers: hdr, ContentType: "application/json", Body: hostileBody(16384)})

	words := make([]string, 0, len(sqlWords))
	for w := range sqlWords {
		words = append(words, w)
	}
	slices.Sort(words)
	r := rand.New(rand.NewPCG(32, 16))
	for range 3000 {
		n := 1 + r.IntN(3*batchSize)
		q := make([]string, 0, n)
		doc := map[string]string{}
		for i := range n {
			v := "plain value"
			if r.IntN(4) == 0 {
				v = randomFastPathValue(r, words)
			}
			q = append(q, "k"+string(rune('a'+i%26))+"="+url.QueryEscape(v))
			doc["f"+string(rune('a'+i%26))+string(rune('a'+i/26))] = v
		}
		body, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, &Input{Path: "/p", RawQuery: strings.Join(q, "&")},
			&Input{Path: "/p", Headers: hdr, ContentType: "application/json", Body: body})
	}

	ctx := context.Background()
	blocked := 0
	for _, in := range ins {
		got, want := batched.Inspect(ctx, in), direct.Inspect(ctx, in)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("batched and direct differ on %+v:\nbatched %+v\ndirect  %+v", in, got, want)
		}
		if want.Score > 0 {
			blocked++
		}
	}
	// The comparison covers both outcomes.
	if blocked == 0 || blocked == len(ins) {
		t.Fatalf("%d of %d inputs scored: the corpus tests one outcome only", blocked, len(ins))
	}
}
