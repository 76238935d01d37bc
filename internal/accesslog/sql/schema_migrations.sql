-- One row per applied migration step; EnsureSchema applies the steps above max(version).
-- Rows are only ever added, so a plain MergeTree works on every server version.
CREATE TABLE IF NOT EXISTS {{.DB}}.schema_migrations
(
    component  String,
    version    UInt32,
    applied_at DateTime
)
ENGINE = MergeTree
ORDER BY (component, version)
