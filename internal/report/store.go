package report

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Stored is a daily_reports row.
type Stored struct {
	Date            time.Time
	GeneratedAt     time.Time
	Health          string
	Total           uint64
	ErrorRate       float64
	Summary         string
	Markdown        string
	HTML            string
	Aggregates      string
	NarrativeSource string
}

// Store writes the report into daily_reports. The table is a
// ReplacingMergeTree(generated_at) ordered by date, so a rerun for the same
// date replaces the row once merged and at once for readers using FINAL.
func (r *Reporter) Store(ctx context.Context, rep *Report) error {
	if r.cfg.Cluster != "" {
		// daily_reports is Distributed: insert into its shard before
		// answering (a setting 18.16 knows), so a report that is stored can
		// be read back at once and a shard that is down fails the run.
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
	}
	// The explicit column list is what makes PrepareBatch work on 18.16.
	batch, err := r.conn.PrepareBatch(ctx, "INSERT INTO "+r.table("daily_reports")+
		" (date, generated_at, health, total, error_rate, summary, markdown, html, aggregates, narrative_source)")
	if err != nil {
		return fmt.Errorf("store report %s: prepare: %w", rep.Date, err)
	}
	defer batch.Abort() //nolint:errcheck // no-op after Send
	a := rep.Aggregates
	if err := batch.Append(rep.Date.Start(time.UTC), rep.GeneratedAt.UTC().Truncate(time.Second), string(a.Health),
		a.Totals.Requests, a.Totals.ErrorRate, rep.Narrative.Summary, rep.Markdown, rep.HTML,
		string(rep.AggregatesJSON), string(rep.Source)); err != nil {
		return fmt.Errorf("store report %s: append: %w", rep.Date, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("store report %s: send: %w", rep.Date, err)
	}
	return nil
}

// ErrNoReport is returned by Load when no report is stored for the date.
var ErrNoReport = errors.New("no stored report")

// Load reads the current report for a date (FINAL collapses reruns).
func (r *Reporter) Load(ctx context.Context, d Date) (Stored, error) {
	var s Stored
	rows, err := r.conn.Query(ctx, "SELECT date, generated_at, health, total, error_rate, summary, markdown, html, aggregates, narrative_source FROM "+
		r.table("daily_reports")+" FINAL WHERE date = toDate(@d)", clickhouse.Named("d", d.String()))
	if err != nil {
		return s, fmt.Errorf("load report %s: %w", d, err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		if err := rows.Scan(&s.Date, &s.GeneratedAt, &s.Health, &s.Total, &s.ErrorRate, &s.Summary, &s.Markdown,
			&s.HTML, &s.Aggregates, &s.NarrativeSource); err != nil {
			return s, fmt.Errorf("load report %s: %w", d, err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("load report %s: %w", d, err)
	}
	switch {
	case n == 0:
		return s, fmt.Errorf("load report %s: %w", d, ErrNoReport)
	case n > 1:
		return s, fmt.Errorf("load report %s: FINAL returned %d rows", d, n)
	}
	return s, nil
}

// WriteFiles writes report-YYYY-MM-DD.md and .html into dir, atomically
// (temp file + rename) so a reader never sees half a report.
func WriteFiles(dir string, rep *Report) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("write report files: %w", err)
	}
	var paths []string
	for _, f := range []struct{ ext, body string }{{"md", rep.Markdown}, {"html", rep.HTML}} {
		p := filepath.Join(dir, fmt.Sprintf("report-%s.%s", rep.Date, f.ext))
		tmp, err := os.CreateTemp(dir, ".report-*")
		if err != nil {
			return paths, fmt.Errorf("write %s: %w", p, err)
		}
		_, werr := tmp.WriteString(f.body)
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr); err != nil {
			os.Remove(tmp.Name())
			return paths, fmt.Errorf("write %s: %w", p, err)
		}
		if err := os.Chmod(tmp.Name(), 0o644); err != nil {
			os.Remove(tmp.Name())
			return paths, fmt.Errorf("write %s: %w", p, err)
		}
		if err := os.Rename(tmp.Name(), p); err != nil {
			os.Remove(tmp.Name())
			return paths, fmt.Errorf("write %s: %w", p, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}
