package testenv

import (
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// OrderBody is an 8 KiB benign JSON order, as an API client posts it.
var OrderBody = func() []byte {
	var b strings.Builder
	b.WriteString(`{"customer":"c-1042","items":[`)
	for i := range 60 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%05d","name":"Trail running shoe, size %d","note":"Ships in 2-3 days; gift wrap","qty":%d}`,
			i, 36+i%12, i%4+1)
	}
	b.WriteString(`],"comment":"`)
	for b.Len() < 8190 {
		b.WriteString("Please leave the parcel at the back door. ")
	}
	return []byte(b.String()[:8190] + `"}`)
}()

// BrowserCheck is the CheckRequest Envoy sends for request i of a load
// test at an edge listener (use_remote_address): a browser GET from one of
// clients addresses, or with body an OrderBody POST (with_request_body,
// pack_as_bytes), with x-request-id tag-i.
func BrowserCheck(i, clients int, body bool, tag string) *authv3.CheckRequest {
	c := i % clients
	ip := fmt.Sprintf("198.18.%d.%d", c/250, c%250+1)
	id := fmt.Sprintf("%s-%d", tag, i)
	method, path := "GET", "/products/shoes?page=2&sort=price"
	h := map[string]string{
		":authority": "api.example.com", ":method": method, ":path": path, ":scheme": "http",
		"user-agent":      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
		"accept":          "text/html,application/json",
		"accept-language": "en-US,en;q=0.9",
		"cookie":          "session=3f2a9c0d1b; theme=dark",
		"x-forwarded-for": ip, "x-forwarded-proto": "http", "x-request-id": id,
	}
	hr := &authv3.AttributeContext_HttpRequest{Id: id, Method: method, Path: path, Host: "api.example.com",
		Scheme: "http", Protocol: "HTTP/1.1", Headers: h}
	if body {
		method, path = "POST", "/api/orders"
		hr.Method, hr.Path = method, path
		h[":method"], h[":path"] = method, path
		h["content-type"] = "application/json"
		h["content-length"] = fmt.Sprint(len(OrderBody))
		h["x-envoy-auth-partial-body"] = "false"
		hr.RawBody, hr.Size = OrderBody, int64(len(OrderBody))
	}
	addr := func(a string, p uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: a, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p}}}}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: addr(ip, 40000)},
		Destination: &authv3.AttributeContext_Peer{Address: addr("10.0.0.10", 8080)},
		Request:     &authv3.AttributeContext_Request{Http: hr},
	}}
}
