-- daily_reports: one report per date; a rerun inserts a newer generated_at and
-- ReplacingMergeTree keeps only that one (readers use FINAL or argMax).
CREATE TABLE IF NOT EXISTS {{.DB}}.{{table "daily_reports"}}
(
    date             Date,
    generated_at     DateTime,
    health           {{lc "String"}},
    total            UInt64,
    error_rate       Float64,
    summary          String{{codec "ZSTD(3)"}},
    markdown         String{{codec "ZSTD(3)"}},
    html             String{{codec "ZSTD(3)"}},
    aggregates       String{{codec "ZSTD(3)"}},
    narrative_source {{lc "String"}}
)
ENGINE = {{engine "daily_reports" "ReplacingMergeTree" "generated_at"}}
ORDER BY date
