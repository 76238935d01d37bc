// Package envoy holds smartlayer's Envoy and Istio configuration (envoy.yaml,
// envoy-sidecar.yaml, istio/) and the tests that check it against Envoy's own
// v3 API (go-control-plane) and against deploy/config/smartlayer.yaml. There is
// no Go API here: the YAML files are the product.
package envoy
