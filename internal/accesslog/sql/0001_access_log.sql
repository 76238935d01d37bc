-- access_log: one row per HTTP request seen by Envoy's ALS (CONTRACTS.md).
-- One column set on every server: lc, codec and the TTL render only on servers
-- >= 20.1 and never change a column's name or base type.
-- table and engine render the layout: access_log on one server, access_log_local
-- (Replicated when accesslog.clickhouse.replicated) under a Distributed access_log on a cluster.
CREATE TABLE IF NOT EXISTS {{.DB}}.{{table "access_log"}}
(
    timestamp        DateTime{{codec "Delta, ZSTD(1)"}},
    timestamp_ms     UInt16,
    date             Date,
    node_id          {{lc "String"}},
    method           {{lc "String"}},
    scheme           {{lc "String"}},
    authority        {{lc "String"}},
    path             String{{codec "ZSTD(1)"}},
    query            String{{codec "ZSTD(1)"}},
    route_name       {{lc "String"}},
    status           UInt16,
    duration_ms      UInt32,
    bytes_in         UInt64,
    bytes_out        UInt64,
    client_ip        String{{codec "ZSTD(1)"}},
    user_id          String{{codec "ZSTD(1)"}},
    plan             {{lc "String"}},
    user_agent       {{lc "String"}},
    referer          String{{codec "ZSTD(1)"}},
    request_id       String{{codec "ZSTD(1)"}},
    upstream_cluster {{lc "String"}},
    upstream_host    {{lc "String"}},
    response_flags   {{lc "String"}},
    blocked          UInt8,
    block_module     {{lc "String"}},
    block_reason     {{lc "String"}},
    score            UInt16
)
ENGINE = {{engine "access_log" "MergeTree" ""}}
PARTITION BY date
ORDER BY (date, authority, path, timestamp)
{{- if and .Modern .TTLDays}}
TTL date + INTERVAL {{.TTLDays}} DAY
SETTINGS ttl_only_drop_parts = 1
{{- end}}
