// Command crseval replays CRS's go-ftw regression tests and the benign
// corpus through smartlayer's payload stage and through Coraza + CRS at
// paranoia level 1, and writes the side-by-side tables.
//
//	cd eval && go run ./cmd/crseval                 # everything, writes RESULTS.md and out/
//	cd eval && go run ./cmd/crseval -family 942 -v  # one family, every test's outcome
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"

	"github.com/smartlayer/smartlayer/eval"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "crseval:", err)
		os.Exit(1)
	}
}

func run() error {
	family := flag.String("family", "", "comma-separated rule families to run (e.g. 942,941); default all")
	verbose := flag.Bool("v", false, "print every test's outcome")
	outDir := flag.String("out", "out", "directory for misses-<family>.txt and fp-benign.txt")
	results := flag.String("results", "RESULTS.md", "Markdown report to write (only for a full run); empty: none")
	allHeaders := flag.Bool("all-headers", false, "diagnostic: smartlayer inspects every header, not only payload.headers' defaults (no RESULTS.md)")
	benign := flag.String("benign", "benign/corpus.jsonl", "benign corpus (JSON lines); empty: skip")
	flag.Parse()

	start := time.Now()
	fams := map[string]bool{}
	if *family != "" {
		for _, f := range strings.Split(*family, ",") {
			fams[strings.TrimSpace(f)] = true
		}
	} else {
		for _, f := range eval.Families {
			fams[f.ID] = true
		}
	}
	pls, err := eval.ParanoiaLevels(coreruleset.FS, "@owasp_crs")
	if err != nil {
		return fmt.Errorf("rule paranoia levels: %w", err)
	}
	cases, err := eval.LoadCases(crstests.FS, fams, pls)
	if err != nil {
		return fmt.Errorf("load tests: %w", err)
	}
	fmt.Fprintf(os.Stderr, "crseval: %d tests in %d families; compiling CRS…\n", len(cases), len(fams))
	eng, err := eval.NewEngines(*allHeaders)
	if err != nil {
		return err
	}
	ctx := context.Background()
	res, err := eng.RunCases(ctx, cases)
	if err != nil {
		return err
	}
	if *verbose {
		eval.WriteOutcomes(os.Stdout, res)
	}
	rep := eval.Summarise(res)

	var ben *eval.BenignReport
	if *benign != "" && *family == "" {
		vals, err := eval.LoadBenign(os.DirFS("."), *benign)
		if err != nil {
			return err
		}
		ben, err = eng.RunBenign(ctx, vals)
		if err != nil {
			return err
		}
	}

	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	if err := eval.WriteMisses(*outDir, res); err != nil {
		return err
	}
	if ben != nil {
		if err := ben.WriteFP(*outDir + "/fp-benign.txt"); err != nil {
			return err
		}
	}
	md := eval.Markdown(rep, ben, eval.RunInfo{
		Date: start.UTC().Format("2006-01-02 15:04 MST"), Took: time.Since(start).Round(time.Second),
		Command: "make eval (cd eval && go run ./cmd/crseval)",
	})
	fmt.Print(md)
	if *results != "" && *family == "" && !*allHeaders {
		if err := os.WriteFile(*results, []byte(md), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "crseval: wrote %s and %s/\n", *results, *outDir)
	}
	return nil
}
