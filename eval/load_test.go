package eval

import (
	"os"
	"testing"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"
)

// TestEmbeddedCases parses every shipped test of the evaluated families and
// checks each family has PL1 attacks with known paranoia levels.
func TestEmbeddedCases(t *testing.T) {
	pls, err := ParanoiaLevels(coreruleset.FS, "@owasp_crs")
	if err != nil {
		t.Fatal(err)
	}
	fams := map[string]bool{}
	for _, f := range Families {
		fams[f.ID] = true
	}
	cases, err := LoadCases(crstests.FS, fams, pls)
	if err != nil {
		t.Fatal(err)
	}
	pl1 := map[string]int{}
	for _, c := range cases {
		if c.Expect == Attack && c.PL == 1 {
			pl1[c.Family]++
		}
	}
	for f := range fams {
		if pl1[f] == 0 {
			t.Errorf("family %s: no PL1 attack tests", f)
		}
	}
}

func TestBenignCorpus(t *testing.T) {
	vals, err := LoadBenign(os.DirFS("."), "benign/corpus.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) < 2000 {
		t.Errorf("%d benign values, want at least 2000", len(vals))
	}
}
