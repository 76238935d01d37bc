package eval

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// ClientIP is the replaying client's address (TEST-NET-3).
const ClientIP = "203.0.113.7"

// CheckRequest builds the ext_authz v3 CheckRequest Envoy sends for r with
// the deployed filter settings (envoy/envoy.yaml): headers lowercased in
// the headers map, Host as :authority, pseudo-headers added, path with its
// query, the body in raw_body (pack_as_bytes) cut at max_request_bytes with
// x-envoy-auth-partial-body, and the peer as source address. Envoy's own
// path normalisation (normalize_path, merge_slashes) is not applied: the
// detector sees the path as the test sent it.
func CheckRequest(r *Request, requestID string) *authv3.CheckRequest {
	h := make(map[string]string, len(r.Headers)+8)
	for _, hd := range r.Headers {
		k := strings.ToLower(hd.Name)
		if k == "host" {
			k = ":authority"
		}
		if prev, ok := h[k]; ok {
			h[k] = prev + "," + hd.Value // Envoy joins repeated headers
			continue
		}
		h[k] = hd.Value
	}
	path := r.URI
	if i := strings.Index(path, "://"); i >= 0 && !strings.HasPrefix(path, "/") {
		// Absolute form: Envoy splits it into :authority and :path.
		rest := path[i+3:]
		host, p, _ := strings.Cut(rest, "/")
		path = "/" + p
		if _, ok := h[":authority"]; !ok {
			h[":authority"] = host
		}
	}
	if h[":authority"] == "" {
		h[":authority"] = "localhost"
	}
	method := r.Method
	if method == "" {
		method = "GET"
	}
	h[":method"], h[":path"], h[":scheme"] = method, path, "http"
	h["x-request-id"] = requestID
	h["x-forwarded-proto"] = "http"
	h["x-forwarded-for"] = ClientIP
	http := &authv3.AttributeContext_HttpRequest{
		Id: requestID, Method: method, Headers: h, Path: path, Host: h[":authority"],
		Scheme: "http", Protocol: "HTTP/1.1", Size: int64(len(r.Body)),
	}
	if len(r.Body) > 0 {
		body := r.Body
		h["x-envoy-auth-partial-body"] = "false"
		if len(body) > maxBodyBytes {
			body = body[:maxBodyBytes]
			h["x-envoy-auth-partial-body"] = "true"
		}
		http.RawBody = body
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: socket(ClientIP, 40000)},
		Destination: &authv3.AttributeContext_Peer{Address: socket("127.0.0.1", 8080)},
		Request:     &authv3.AttributeContext_Request{Http: http},
	}}
}

func socket(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}
