// Package deploy holds smartlayer's deployment artefacts — config/ (the
// compose/Kubernetes smartlayer.yaml), kubernetes/, grafana/, clickhouse/ — and
// the tests that keep them consistent with each other, with docker-compose.yml,
// the Dockerfile and envoy/envoy.yaml, and that run every Grafana query against
// a real ClickHouse. There is no Go API here.
package deploy
