// Command alsload is the access-log ingest load generator of scripts/bench.sh:
// it opens a few Envoy ALS v3 streams to an address and sends
// HTTPAccessLogEntry batches on each as fast as the server takes them for a
// while, then closes the streams (after the server has read everything) and
// prints the entries sent:
//
//	sent 6123400 entries in 60.01 s: 102040 entries/s, 61.2 cpu-s
//
// Messages are marshalled once, before the run: each send copies one and
// writes the current second and fresh request ids into it in place. The
// load generator shares the CPUs with authz and ClickHouse in the bench, and
// marshalling every entry (even with vtprotobuf's generated code) took 0.4
// of the 2 cores at 113k entries/s; Envoy, in C++, marshals on its own
// machines.
//
// Entries look like Envoy's for browser and API traffic at an edge listener:
// varied clients, paths, user agents, status codes and latencies, user
// headers on most, ext_authz metadata on denials, and a unique x-request-id
// (UUID-shaped) on every entry.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // the codec vtCodec falls back to
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "ALS gRPC address")
	duration := flag.Duration("duration", 60*time.Second, "how long to send")
	streams := flag.Int("streams", 4, "concurrent streams (one connection each, like separate Envoys)")
	batch := flag.Int("batch", 64, "entries per StreamAccessLogsMessage")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("alsload: ")

	var prefix [10]byte
	_, _ = rand.Read(prefix[:])
	ids := idGen{prefix: hex.EncodeToString(prefix[:])}

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var sent atomic.Int64
	errs := make(chan error, *streams)
	var wg sync.WaitGroup
	start := time.Now()
	for s := range *streams {
		conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{encoding.GetCodecV2("proto")})))
		if err != nil {
			log.Fatal(err)
		}
		defer conn.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := stream(ctx, conn, s, *batch, &ids, &sent); err != nil {
				errs <- fmt.Errorf("stream %d: %w", s, err)
				cancel()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	close(errs)
	failed := false
	for err := range errs {
		log.Print(err)
		failed = true
	}
	n := sent.Load()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	fmt.Printf("sent %d entries in %.2f s: %.0f entries/s, %.1f cpu-s\n", n, elapsed, float64(n)/elapsed, cpu)
	if failed {
		os.Exit(1)
	}
}

// rawCodec sends a message's bytes as they are (a *wireMsg), copied into a
// pooled buffer that gRPC frees once written: the stream writes the next
// message into the same bytes while the transport may still hold this one.
// Everything else goes to the proto codec.
type rawCodec struct{ encoding.CodecV2 }

// wireMsg is a marshalled StreamAccessLogsMessage.
type wireMsg []byte

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(*wireMsg)
	if !ok {
		return c.CodecV2.Marshal(v)
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(len(*m))
	copy(*buf, *m)
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// idGen hands out UUID-shaped request ids: a random run prefix and a counter.
type idGen struct {
	prefix string // 20 hex digits
	n      atomic.Uint64
}

// put writes the next id into b (idLen bytes).
func (g *idGen) put(b []byte) {
	p := g.prefix
	copy(b[0:8], p[0:8])
	b[8] = '-'
	copy(b[9:13], p[8:12])
	b[13] = '-'
	b[14] = '4'
	copy(b[15:18], p[12:15])
	b[18] = '-'
	b[19] = '8'
	copy(b[20:23], p[15:18])
	b[23] = '-'
	var c [16]byte
	hex := strconv.AppendUint(c[:0], g.n.Add(1), 16)
	for i := range 12 {
		b[24+i] = '0'
	}
	copy(b[idLen-len(hex):idLen], hex)
}

const idLen = 36

var (
	paths = []string{
		"/", "/products/shoes?page=2&sort=price", "/products/%d", "/api/v1/cart", "/api/v1/orders/%d",
		"/api/v1/search?q=trail+running", "/static/app.%d.js", "/static/img/p%d.webp", "/login", "/account/settings",
	}
	agents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
		"okhttp/4.12.0",
		"python-requests/2.32.3",
	}
	methods = []corev3.RequestMethod{corev3.RequestMethod_GET, corev3.RequestMethod_GET, corev3.RequestMethod_GET,
		corev3.RequestMethod_POST, corev3.RequestMethod_GET, corev3.RequestMethod_PUT}
)

func socket(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

// entry builds the i-th entry of stream s: everything but the request id
// and start time, which stream sets on every send.
func entry(s, i int) *alsdatav3.HTTPAccessLogEntry {
	k := s*100_003 + i*7919
	client := fmt.Sprintf("198.18.%d.%d", k/250%250, k%250+1)
	path := paths[k%len(paths)]
	if containsVerb(path) {
		path = fmt.Sprintf(path, k%5000)
	}
	status := uint32(200)
	switch {
	case k%100 < 3:
		status = 404
	case k%100 == 3:
		status = 500
	case k%100 == 4:
		status = 403
	case k%100 == 5:
		status = 304
	}
	common := &alsdatav3.AccessLogCommon{
		DownstreamRemoteAddress:       socket(client, uint32(40000+k%20000)),
		DownstreamDirectRemoteAddress: socket(client, uint32(40000+k%20000)),
		DownstreamLocalAddress:        socket("10.0.0.10", 8080),
		TimeToLastRxByte:              durationpb.New(100 * time.Microsecond),
		TimeToLastDownstreamTxByte:    durationpb.New(time.Duration(1+k%400) * time.Millisecond),
		RouteName:                     fmt.Sprintf("route%d", k%20),
		AccessLogType:                 alsdatav3.AccessLogType_DownstreamEnd,
	}
	headers := map[string]string{}
	if k%5 != 0 {
		headers["x-user-id"] = "u" + strconv.Itoa(k%100000)
		headers["x-user-plan"] = []string{"free", "pro", "team"}[k%3]
	}
	if status == 403 {
		common.ResponseFlags = &alsdatav3.ResponseFlags{UnauthorizedDetails: &alsdatav3.ResponseFlags_Unauthorized{
			Reason: alsdatav3.ResponseFlags_Unauthorized_EXTERNAL_SERVICE}}
		md, _ := structpb.NewStruct(map[string]any{"decision": "deny", "module": "behavior",
			"reason": "behavior.sensitive_path", "score": 87})
		common.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"envoy.filters.http.ext_authz": md}}
	} else {
		common.UpstreamCluster = "app"
		common.UpstreamRemoteAddress = socket("10.0.0.20", 8000)
	}
	method := methods[k%len(methods)]
	var body uint64
	if method != corev3.RequestMethod_GET {
		body = uint64(200 + k%4000)
	}
	return &alsdatav3.HTTPAccessLogEntry{
		CommonProperties: common,
		ProtocolVersion:  alsdatav3.HTTPAccessLogEntry_HTTP11,
		Request: &alsdatav3.HTTPRequestProperties{
			RequestMethod: method, Scheme: "https", Authority: "api.example.com", Path: path,
			UserAgent: agents[k%len(agents)], Referer: "https://www.example.com/",
			ForwardedFor: client, RequestHeaders: headers,
			RequestHeadersBytes: 600, RequestBodyBytes: body,
		},
		Response: &alsdatav3.HTTPResponseProperties{
			ResponseCode:         wrapperspb.UInt32(status),
			ResponseHeadersBytes: 180, ResponseBodyBytes: uint64(512 + k%20000),
		},
	}
}

func containsVerb(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '%' && s[i+1] == 'd' {
			return true
		}
	}
	return false
}

// stream sends batches until ctx ends, then closes the stream after the
// server has read everything.
func stream(ctx context.Context, conn *grpc.ClientConn, s, batch int, ids *idGen, sent *atomic.Int64) error {
	ident, tmpls, err := templates(s, batch)
	if err != nil {
		return err
	}
	desc := &alsv3.AccessLogService_ServiceDesc.Streams[0]
	st, err := conn.NewStream(context.WithoutCancel(ctx), desc,
		"/"+alsv3.AccessLogService_ServiceDesc.ServiceName+"/"+desc.StreamName)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	var secs [5]byte
	for next := 0; ctx.Err() == nil; next = (next + 1) % len(tmpls) {
		t := &tmpls[next]
		putSeconds(secs[:], time.Now().Unix())
		for _, e := range t.entries {
			copy(t.msg[e.seconds:], secs[:])
			ids.put(t.msg[e.id : e.id+idLen])
		}
		msg := t.msg
		if ident != nil { // only on a stream's first message, as Envoy does
			msg = append(append(wireMsg{}, ident...), t.msg...)
			ident = nil
		}
		if err := st.SendMsg(&msg); err != nil {
			return fmt.Errorf("send after %d entries: %w", sent.Load(), err)
		}
		sent.Add(int64(len(t.entries)))
	}
	if err := st.CloseSend(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := st.RecvMsg(&alsv3.StreamAccessLogsResponse{}); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// template is one marshalled message of batch entries and where, in each
// entry, the start time's seconds and the request id are.
type template struct {
	msg     wireMsg
	entries []struct{ seconds, id int }
}

// Placeholders the templates are marshalled with, then found and
// overwritten on every send. sentinelSeconds is a 5-byte varint, as every
// Unix second from 2009 to 3058 is.
const sentinelSeconds = 0x7_5a5a_5a5a

// templates marshals stream s's identifier and its messages: 4096 distinct
// entries (or one batch, if larger), cycled through batch by batch.
func templates(s, batch int) (ident wireMsg, tmpls []template, err error) {
	ident, err = proto.Marshal(&alsv3.StreamAccessLogsMessage{Identifier: &alsv3.StreamAccessLogsMessage_Identifier{
		Node: &corev3.Node{Id: fmt.Sprintf("edge-%d", s), Cluster: "edge"}, LogName: "smartlayer"}})
	if err != nil {
		return nil, nil, err
	}
	secs := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), sentinelSeconds)
	tmpls = make([]template, max(1, 4096/batch))
	for m := range tmpls {
		msgs := make([]*alsdatav3.HTTPAccessLogEntry, batch)
		for k := range msgs {
			i := m*batch + k
			e := entry(s, i)
			e.CommonProperties.StartTime = &timestamppb.Timestamp{Seconds: sentinelSeconds, Nanos: int32(i%1000) * 1e6}
			e.Request.RequestId = placeholderID(k)
			msgs[k] = e
		}
		b, err := proto.Marshal(&alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
			HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: msgs}}})
		if err != nil {
			return nil, nil, err
		}
		t := template{msg: b, entries: make([]struct{ seconds, id int }, batch)}
		// Entries are marshalled in order: each placeholder is found
		// after the previous entry's.
		from := 0
		for k := range t.entries {
			id := bytes.Index(b[from:], []byte(placeholderID(k)))
			sec := bytes.Index(b[from:], secs)
			if id < 0 || sec < 0 {
				return nil, nil, fmt.Errorf("template %d: entry %d's placeholders not found", m, k)
			}
			t.entries[k].id, t.entries[k].seconds = from+id, from+sec+len(secs)-5
			from += max(id+idLen, sec+len(secs))
		}
		tmpls[m] = t
	}
	return ident, tmpls, nil
}

// placeholderID is entry k's request id in a template: distinct, idLen bytes.
func placeholderID(k int) string { return fmt.Sprintf("zzzzzzzz-zzzz-zzzz-zzzz-%012d", k) }

// putSeconds writes v as a 5-byte varint (v < 2^35).
func putSeconds(b []byte, v int64) {
	for i := range 4 {
		b[i] = byte(v>>(7*i)) | 0x80
	}
	b[4] = byte(v >> 28)
}
