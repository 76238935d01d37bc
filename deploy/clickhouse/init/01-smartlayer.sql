-- smartlayer's ClickHouse user: authz writes the access log, the reporter reads it, writes
-- daily_reports and drops expired partitions. Names: accesslog.clickhouse.username and
-- .database in deploy/config/smartlayer.yaml (deploy/clickhouse_test.go keeps them equal).
--
-- Run once as an administrator, after replacing the placeholder with the SHA-256 (hex) of the
-- password smartlayer gets as SMARTLAYER_ACCESSLOG_CLICKHOUSE_PASSWORD; README "Kubernetes"
-- shows the one-liner. A hash, so the password appears in no query, log or process list.
-- Needs ClickHouse with SQL access control (20.4+; the admin needs access_management).

CREATE DATABASE IF NOT EXISTS smartlayer;

CREATE USER IF NOT EXISTS smartlayer
    IDENTIFIED WITH sha256_hash BY '@SMARTLAYER_PASSWORD_SHA256@'
    DEFAULT DATABASE smartlayer;

-- authz at start-up: CREATE DATABASE/TABLE IF NOT EXISTS, ALTER TABLE … ADD COLUMN (schema
-- migrations), INSERT into access_log and schema_migrations. The reporter: SELECT, INSERT into
-- daily_reports, ALTER TABLE access_log DROP PARTITION (retention; ClickHouse checks ALTER DELETE
-- for it). system.columns and system.parts show this database's tables to a user with grants on it.
GRANT CREATE DATABASE ON smartlayer.* TO smartlayer;
GRANT SELECT, INSERT, CREATE TABLE, ALTER ADD COLUMN, ALTER DELETE ON smartlayer.* TO smartlayer;

-- On a cluster (accesslog.clickhouse.cluster, README "Scaling out"): run this file on every node
-- (authz and the reporter create and migrate the tables node by node), and uncomment the grant
-- below: creating the Distributed tables needs REMOTE, which ClickHouse grants only ON *.*.
-- GRANT REMOTE ON *.* TO smartlayer;
