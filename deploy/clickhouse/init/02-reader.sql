-- Read-only user for Grafana (deploy/grafana/provisioning/datasources/clickhouse.yaml), the SQL
-- twin of deploy/clickhouse/users.d/reader.xml, which docker-compose.yml mounts instead: use one
-- or the other (a user defined in users.d cannot be changed by SQL). readonly = 1 forbids writes,
-- DDL and setting changes, except max_execution_time, which the Grafana plugin sets.
-- Replace the placeholder with the SHA-256 (hex) of the password Grafana's datasource uses
-- (CLICKHOUSE_READER_PASSWORD); README "Kubernetes" shows how.

CREATE SETTINGS PROFILE IF NOT EXISTS grafana_reader
    SETTINGS readonly = 1, max_execution_time = 60 CHANGEABLE_IN_READONLY;

CREATE USER IF NOT EXISTS reader
    IDENTIFIED WITH sha256_hash BY '@READER_PASSWORD_SHA256@'
    DEFAULT DATABASE smartlayer
    SETTINGS PROFILE grafana_reader;

GRANT SELECT ON smartlayer.* TO reader;
