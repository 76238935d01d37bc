package payload

import (
	"context"
	"encoding/base64"
	"testing"
)

// browserHeaders are what Chrome, Firefox, Safari, curl and API clients
// send; none of them may score.
var browserHeaders = []map[string]string{
	{
		":authority": "shop.example.com", ":method": "GET", ":path": "/p/1?x=1", ":scheme": "https",
		"accept":                         "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
		"accept-encoding":                "gzip, deflate, br, zstd",
		"accept-language":                "en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7",
		"cache-control":                  "max-age=0",
		"sec-ch-ua":                      `"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`,
		"sec-ch-ua-mobile":               "?0",
		"sec-ch-ua-platform":             `"Windows"`,
		"sec-ch-ua-full-version-list":    `"Chromium";v="124.0.6367.119", "Google Chrome";v="124.0.6367.119", "Not-A.Brand";v="99.0.0.0"`,
		"sec-fetch-dest":                 "document",
		"sec-fetch-mode":                 "navigate",
		"sec-fetch-site":                 "same-origin",
		"sec-fetch-user":                 "?1",
		"upgrade-insecure-requests":      "1",
		"user-agent":                     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
		"referer":                        "https://shop.example.com/search?q=red+shoes&page=2",
		"cookie":                         "_ga=GA1.2.1234567890.1700000000; session=eyJhbGciOiJIUzI1NiJ9.eyJ1aWQiOjF9.abc; consent={\"ads\":false,\"stats\":true}",
		"if-none-match":                  `W/"5e15153d-120f", "abc"`,
		"if-modified-since":              "Wed, 21 Oct 2015 07:28:00 GMT",
		"priority":                       "u=0, i",
		"dnt":                            "1",
		"x-forwarded-for":                "203.0.113.195, 70.41.3.18, 150.172.238.178",
		"x-forwarded-proto":              "https",
		"x-forwarded-host":               "shop.example.com",
		"x-forwarded-port":               "443",
		"x-real-ip":                      "203.0.113.195",
		"x-request-id":                   "a5c0c4f8-7f27-4b8b-9f5f-3d1f0b9e8e2a",
		"x-client-trace-id":              "0af7651916cd43dd8448eb211c80319c",
		"x-envoy-expected-rq-timeout-ms": "15000",
		"x-envoy-external-address":       "203.0.113.195",
		"forwarded":                      `for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"`,
		"origin":                         "https://shop.example.com",
		"host":                           "shop.example.com:8443",
		"traceparent":                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"tracestate":                     "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
		"x-b3-traceid":                   "80f198ee56343ba864fe8b2a57d3eff7",
		"x-amzn-trace-id":                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
		"x-cloud-trace-context":          "105445aa7843bc8bf206b120001000/1;o=1",
		"x-datadog-tags":                 "_dd.p.dm=-0,_dd.p.tid=6567a0b700000000",
		"baggage":                        "userId=alice,serverNode=DF%2028,isProduction=false",
		"content-type":                   "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
		"range":                          "bytes=200-1000, 2000-6576, 19000-",
		"te":                             "trailers",
		"via":                            "1.1 vegur, HTTP/1.1 GWA",
		"authorization":                  "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6IjFlOWdkazcifQ." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://id.example.com/","sub":"248289761001","aud":"s6BhdRkqt3","email":"jane.o'neil@example.com","name":"Jane O'Neil","roles":["admin","user"],"scope":"openid profile email","exp":1311281970}`)) + ".sig-nat_ure",
		"x-api-key":                      "sk_live_51H8aZ2eZvKYlo2C0rS9xYz",
		"x-csrf-token":                   "kJ3f+8aV/2q==",
		"x-requested-with":               "XMLHttpRequest",
		"x-http-method-override":         "PATCH",
		"content-length":                 "1234",
		"accept-charset":                 "utf-8, iso-8859-1;q=0.5",
		"link":                           `<https://example.com/style.css>; rel=preload; as=style`,
		"prefer":                         "return=representation; wait=100",
	},
	{"authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("jane.doe@example.com:Tr0ub4dor&3"))},
	{"authorization": `Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cqop=auth, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`},
	{"authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"},
	{"authorization": "Bearer 2YotnFZFEjr1zCsicMWpAA"},
	{"user-agent": "curl/8.5.0", "accept": "*/*"},
	{"user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"},
}

func TestBenignHeaders(t *testing.T) {
	v := newTestValidator(t, DefaultConfig())
	for i, h := range browserHeaders {
		res := v.Inspect(context.Background(), &Input{Path: "/", Headers: h})
		if res.Score > 0 {
			t.Errorf("set %d: score %d, findings %+v", i, res.Score, res.Findings)
		}
	}
}
