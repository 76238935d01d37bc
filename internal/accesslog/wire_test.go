package accesslog

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestWireFieldNumbers(t *testing.T) {
	mapEntry := (&datav3.HTTPRequestProperties{}).ProtoReflect().Descriptor().Fields().ByName("request_headers").Message()
	for _, tc := range []struct {
		msg   protoreflect.ProtoMessage
		field protoreflect.Name
		num   protowire.Number
	}{
		{&alsv3.StreamAccessLogsMessage{}, "identifier", numMsgIdentifier},
		{&alsv3.StreamAccessLogsMessage{}, "http_logs", numMsgHTTPLogs},
		{&alsv3.StreamAccessLogsMessage{}, "tcp_logs", numMsgTCPLogs},
		{&alsv3.StreamAccessLogsMessage_Identifier{}, "node", numIdentNode},
		{&corev3.Node{}, "id", numNodeID},
		{&alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{}, "log_entry", numLogEntry},
		{&alsv3.StreamAccessLogsMessage_TCPAccessLogEntries{}, "log_entry", numLogEntry},
		{&datav3.HTTPAccessLogEntry{}, "common_properties", numEntryCommon},
		{&datav3.HTTPAccessLogEntry{}, "request", numEntryRequest},
		{&datav3.HTTPAccessLogEntry{}, "response", numEntryResponse},
		{&datav3.AccessLogCommon{}, "downstream_remote_address", numCommonDownstreamRemote},
		{&datav3.AccessLogCommon{}, "start_time", numCommonStartTime},
		{&datav3.AccessLogCommon{}, "time_to_last_downstream_tx_byte", numCommonTimeToLastDownstreamTx},
		{&datav3.AccessLogCommon{}, "upstream_remote_address", numCommonUpstreamRemote},
		{&datav3.AccessLogCommon{}, "upstream_cluster", numCommonUpstreamCluster},
		{&datav3.AccessLogCommon{}, "response_flags", numCommonResponseFlags},
		{&datav3.AccessLogCommon{}, "metadata", numCommonMetadata},
		{&datav3.AccessLogCommon{}, "route_name", numCommonRouteName},
		{&datav3.AccessLogCommon{}, "downstream_direct_remote_address", numCommonDownstreamDirectRemote},
		{&datav3.AccessLogCommon{}, "duration", numCommonDuration},
		{&datav3.AccessLogCommon{}, "intermediate_log_entry", numCommonIntermediate},
		{&datav3.HTTPRequestProperties{}, "request_method", numReqMethod},
		{&datav3.HTTPRequestProperties{}, "scheme", numReqScheme},
		{&datav3.HTTPRequestProperties{}, "authority", numReqAuthority},
		{&datav3.HTTPRequestProperties{}, "path", numReqPath},
		{&datav3.HTTPRequestProperties{}, "user_agent", numReqUserAgent},
		{&datav3.HTTPRequestProperties{}, "referer", numReqReferer},
		{&datav3.HTTPRequestProperties{}, "request_id", numReqRequestID},
		{&datav3.HTTPRequestProperties{}, "request_headers_bytes", numReqHeadersBytes},
		{&datav3.HTTPRequestProperties{}, "request_body_bytes", numReqBodyBytes},
		{&datav3.HTTPRequestProperties{}, "request_headers", numReqHeaders},
		{&datav3.HTTPResponseProperties{}, "response_code", numRespCode},
		{&datav3.HTTPResponseProperties{}, "response_headers_bytes", numRespHeadersBytes},
		{&datav3.HTTPResponseProperties{}, "response_body_bytes", numRespBodyBytes},
		{&datav3.ResponseFlags{}, "unauthorized_details", numFlagsUnauthorized},
		{&corev3.Address{}, "socket_address", numAddrSocket},
		{&corev3.Address{}, "pipe", numAddrPipe},
		{&corev3.Address{}, "envoy_internal_address", numAddrInternal},
		{&corev3.SocketAddress{}, "address", numSockAddress},
		{&corev3.SocketAddress{}, "port_value", numSockPortValue},
		{&corev3.SocketAddress{}, "named_port", numSockNamedPort},
		{&corev3.Metadata{}, "filter_metadata", numMetaFilter},
		{&structpb.Struct{}, "fields", numStructFields},
		{&structpb.Value{}, "null_value", numValueNull},
		{&structpb.Value{}, "number_value", numValueNumber},
		{&structpb.Value{}, "string_value", numValueString},
		{&structpb.Value{}, "bool_value", numValueBool},
		{&structpb.Value{}, "struct_value", numValueStruct},
		{&structpb.Value{}, "list_value", numValueList},
		{&timestamppb.Timestamp{}, "seconds", numTimeSeconds},
		{&timestamppb.Timestamp{}, "nanos", numTimeNanos},
		{&durationpb.Duration{}, "seconds", numTimeSeconds},
		{&durationpb.Duration{}, "nanos", numTimeNanos},
		{&wrapperspb.UInt32Value{}, "value", numWrapperValue},
	} {
		d := tc.msg.ProtoReflect().Descriptor()
		f := d.Fields().ByName(tc.field)
		if f == nil || f.Number() != tc.num {
			t.Errorf("%s.%s: decoder uses field %d, descriptor says %v", d.FullName(), tc.field, tc.num, f)
		}
	}
	if k, v := mapEntry.Fields().ByName("key"), mapEntry.Fields().ByName("value"); k.Number() != numMapEntryKey || v.Number() != numMapEntryValue {
		t.Errorf("map entry fields %d/%d", k.Number(), v.Number())
	}
	// Every bool flag has its short name; numbers beyond the table are
	// flags Envoy added later (the test fails so the table grows).
	fields := (&datav3.ResponseFlags{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if int(f.Number()) >= len(flagNames) || flagNames[f.Number()] == "" {
			t.Errorf("response flag %s (%d) has no short name", f.Name(), f.Number())
		}
	}
}

// refResult is what the reference (proto.Unmarshal and toRow) makes of one
// message, in the frame's terms.
type refResult struct {
	rows                       []Row
	peers                      []string
	tcp, invalid, intermediate int
	nodeID                     string
}

func refDecode(mp mapper, nodeID string, data []byte) (refResult, error) {
	msg := &alsv3.StreamAccessLogsMessage{}
	if err := proto.Unmarshal(data, msg); err != nil {
		return refResult{}, err
	}
	res := refResult{nodeID: nodeID}
	if id := msg.GetIdentifier(); id != nil {
		res.nodeID = id.GetNode().GetId()
	}
	if tcp := msg.GetTcpLogs(); tcp != nil {
		res.tcp = len(tcp.GetLogEntry())
	}
	for _, e := range msg.GetHttpLogs().GetLogEntry() {
		switch {
		case e.GetCommonProperties() == nil && e.GetRequest() == nil && e.GetResponse() == nil:
			res.invalid++
		case e.GetCommonProperties().GetIntermediateLogEntry():
			res.intermediate++
		default:
			r, peer := mp.toRow(res.nodeID, e, received)
			res.rows = append(res.rows, r)
			res.peers = append(res.peers, peer)
		}
	}
	return res, nil
}

// wireDecode decodes one message with a frame that saw nodeID before.
func wireDecode(mp mapper, nodeID string, data []byte) (*frame, error) {
	f := &frame{mp: &mp, received: received, nodeID: nodeID}
	return f, f.decode(data)
}

// sameAsReference decodes data both ways and reports any difference.
func sameAsReference(t *testing.T, mp mapper, data []byte) {
	t.Helper()
	want, refErr := refDecode(mp, "earlier-node", data)
	f, err := wireDecode(mp, "earlier-node", data)
	if refErr != nil {
		return // the decoder may be more lenient (see wire.go)
	}
	if err != nil {
		t.Fatalf("proto.Unmarshal accepts the message, the decoder does not: %v", err)
	}
	if f.tcp != want.tcp || f.invalid != want.invalid || f.intermediate != want.intermediate || f.nodeID != want.nodeID {
		t.Fatalf("counts tcp/invalid/intermediate/node %d/%d/%d/%q, reference %d/%d/%d/%q",
			f.tcp, f.invalid, f.intermediate, f.nodeID, want.tcp, want.invalid, want.intermediate, want.nodeID)
	}
	if len(f.rows) != len(want.rows) {
		t.Fatalf("%d rows, reference %d", len(f.rows), len(want.rows))
	}
	for i := range f.rows {
		if f.rows[i] != want.rows[i] {
			t.Fatalf("row %d\n got %+v\nwant %+v", i, f.rows[i], want.rows[i])
		}
		if f.peers[i] != want.peers[i] {
			t.Fatalf("row %d peer %q, reference %q", i, f.peers[i], want.peers[i])
		}
	}
}

// message wraps entries in a StreamAccessLogsMessage from node.
func message(t testing.TB, node string, entries ...*datav3.HTTPAccessLogEntry) []byte {
	t.Helper()
	msg := &alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries}}}
	if node != "" {
		msg.Identifier = &alsv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: node}}
	}
	b, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wireRow maps one entry the way the receiver does: marshalled by the
// client, decoded from the wire.
func wireRow(t testing.TB, cfg Config, node string, e *datav3.HTTPAccessLogEntry) (Row, string) {
	t.Helper()
	f, err := wireDecode(newMapper(cfg), "", message(t, node, e))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.rows) != 1 {
		t.Fatalf("%d rows from one entry", len(f.rows))
	}
	return f.rows[0], f.peers[0]
}

func TestWireMatchesReferenceOnEnvoyEntries(t *testing.T) {
	var entries []*datav3.HTTPAccessLogEntry
	for _, tc := range mappingCases(t) {
		entries = append(entries, tc.entry)
	}
	for i := range 300 {
		entries = append(entries, testEntry(i%7, i))
	}
	entries = append(entries, benchEntry(t), &datav3.HTTPAccessLogEntry{},
		&datav3.HTTPAccessLogEntry{CommonProperties: &datav3.AccessLogCommon{IntermediateLogEntry: true}})
	for _, p := range []ClientIPPolicy{ClientIPAnonymous, ClientIPAlways, ClientIPNever} {
		cfg := DefaultConfig()
		cfg.StoreClientIP = p
		sameAsReference(t, newMapper(cfg), message(t, "edge-1", entries...))
		sameAsReference(t, newMapper(cfg), message(t, "", entries[:5]...))
	}
}

// wb builds protobuf wire bytes by hand, for what proto.Marshal never writes
// (repeats, odd orders, wrong wire types) but the wire allows.
type wb []byte

func (b wb) msg(num protowire.Number, parts ...wb) wb {
	var inner []byte
	for _, p := range parts {
		inner = append(inner, p...)
	}
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), inner)
}

func (b wb) str(num protowire.Number, s string) wb {
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

func (b wb) varint(num protowire.Number, v uint64) wb {
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

func (b wb) fixed64(num protowire.Number, v uint64) wb {
	return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), v)
}

func (b wb) group(num protowire.Number, inner wb) wb {
	b = protowire.AppendTag(b, num, protowire.StartGroupType)
	b = append(b, inner...)
	return protowire.AppendTag(b, num, protowire.EndGroupType)
}

// enc starts wire bytes: enc.msg(...), enc.str(...).
var enc wb

func httpLogs(entries ...wb) wb { return enc.msg(numMsgHTTPLogs, wrapEach(numLogEntry, entries)...) }

func wrapEach(num protowire.Number, parts []wb) []wb {
	out := make([]wb, len(parts))
	for i, p := range parts {
		out[i] = enc.msg(num, p)
	}
	return out
}

func entry(parts ...wb) wb { return concat(parts...) }

func concat(parts ...wb) wb {
	var b wb
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func common(parts ...wb) wb  { return enc.msg(numEntryCommon, parts...) }
func request(parts ...wb) wb { return enc.msg(numEntryRequest, parts...) }
func socket(num protowire.Number, host string, port uint64) wb {
	return enc.msg(num, enc.msg(numAddrSocket, enc.str(numSockAddress, host), enc.varint(numSockPortValue, port)))
}

func metaEntry(ns string, fields ...wb) wb {
	return enc.msg(numMetaFilter, enc.str(numMapEntryKey, ns), enc.msg(numMapEntryValue, fields...))
}

func structField(key string, value wb) wb {
	return enc.msg(numStructFields, enc.str(numMapEntryKey, key), enc.msg(numMapEntryValue, value))
}

func header(k, v string) wb {
	return enc.msg(numReqHeaders, enc.str(numMapEntryKey, k), enc.str(numMapEntryValue, v))
}

// TestWireProtoSemantics holds the decoder to proto.Unmarshal on what only a
// hand-built or foreign encoder sends: repeated and merged sub-messages,
// oneof switches, wrong wire types, unknown fields and groups.
func TestWireProtoSemantics(t *testing.T) {
	start := enc.msg(numCommonStartTime, enc.varint(numTimeSeconds, 1_764_000_000), enc.varint(numTimeNanos, 5e8))
	reqID := request(enc.str(numReqRequestID, "r1"))
	allow := enc.msg(numCommonMetadata, metaEntry(extAuthzNamespace,
		structField("decision", enc.str(numValueString, "deny")), structField("module", enc.str(numValueString, "quota"))))
	for name, data := range map[string]wb{
		"http logs twice append": concat(httpLogs(entry(reqID)), httpLogs(entry(reqID, common(start)))),
		"tcp after http replaces": concat(httpLogs(entry(reqID)),
			enc.msg(numMsgTCPLogs, enc.msg(numLogEntry), enc.msg(numLogEntry))),
		"http after tcp replaces": concat(enc.msg(numMsgTCPLogs, enc.msg(numLogEntry)), httpLogs(entry(reqID))),
		"identifier after entries": concat(httpLogs(entry(reqID)),
			enc.msg(numMsgIdentifier, enc.msg(numIdentNode, enc.str(numNodeID, "late")))),
		"identifier without node": concat(enc.msg(numMsgIdentifier, enc.str(2, "log")), httpLogs(entry(reqID))),
		"identifiers merge": concat(enc.msg(numMsgIdentifier, enc.msg(numIdentNode, enc.str(numNodeID, "a"))),
			enc.msg(numMsgIdentifier, enc.msg(numIdentNode, enc.str(2, "cluster"))), httpLogs(entry(reqID))),
		"common twice merges": httpLogs(entry(reqID,
			common(start, enc.str(numCommonRouteName, "r-a"), enc.str(numCommonUpstreamCluster, "c")),
			common(enc.str(numCommonRouteName, "r-b"), enc.msg(numCommonStartTime, enc.varint(numTimeNanos, 7e8))))),
		"address oneof: socket then pipe": httpLogs(entry(reqID, common(
			socket(numCommonDownstreamRemote, "192.0.2.1", 1),
			enc.msg(numCommonDownstreamRemote, enc.msg(numAddrPipe, enc.str(1, "/tmp/s")))))),
		"address oneof: pipe then socket, direct fallback": httpLogs(entry(reqID, common(
			enc.msg(numCommonDownstreamRemote, enc.msg(numAddrPipe, enc.str(1, "/tmp/s"))),
			socket(numCommonDownstreamDirectRemote, "::ffff:192.0.2.9", 2)))),
		"socket address merges; named port replaces the port": httpLogs(entry(reqID, common(
			socket(numCommonUpstreamRemote, "10.0.0.1", 80),
			enc.msg(numCommonUpstreamRemote, enc.msg(numAddrSocket, enc.str(numSockNamedPort, "http"))),
			socket(numCommonDownstreamRemote, "198.51.100.1", 3),
			enc.msg(numCommonDownstreamRemote, enc.msg(numAddrSocket, enc.varint(numSockPortValue, 4)))))),
		"wrong wire types are unknown fields": httpLogs(entry(
			request(enc.str(numReqPath, "/kept"), enc.varint(numReqPath, 7), enc.str(numReqMethod, "GET"),
				enc.str(numReqRequestID, "r2")),
			common(enc.fixed64(numCommonIntermediate, 1), enc.varint(numCommonRouteName, 1)),
			enc.varint(numEntryCommon, 3))),
		"flags set and cleared": httpLogs(entry(reqID, common(enc.msg(numCommonResponseFlags,
			enc.varint(2, 1), enc.varint(16, 1), enc.varint(2, 0), enc.msg(numFlagsUnauthorized), enc.varint(12, 2))))),
		"metadata namespace repeated replaces": httpLogs(entry(reqID,
			enc.msg(numEntryResponse, enc.msg(numRespCode, enc.varint(numWrapperValue, 403))),
			common(allow, enc.msg(numCommonMetadata, metaEntry(extAuthzNamespace,
				structField("decision", enc.str(numValueString, "allow"))))))),
		"struct key repeated replaces, value oneof switches": httpLogs(entry(reqID, common(
			enc.msg(numCommonMetadata, metaEntry(extAuthzNamespace,
				structField("decision", enc.str(numValueString, "deny")),
				structField("score", enc.fixed64(numValueNumber, math.Float64bits(12.6))),
				structField("reason", enc.str(numValueString, "a")),
				structField("reason", concat(enc.str(numValueString, "b"), enc.fixed64(numValueNumber, 1))),
				structField("module", concat(enc.str(numValueString, "m"), enc.msg(numValueStruct))),
				metaFieldWithValueFirst("module", enc.str(numValueString, "payload")),
			))))),
		"map entry value before key, repeated header": httpLogs(entry(request(
			enc.msg(numReqHeaders, enc.str(numMapEntryValue, "u1"), enc.str(numMapEntryKey, "x-user-id")),
			header("x-user-id", "u2"), header("x-user-plan", "free"), enc.msg(numReqHeaders, enc.str(numMapEntryValue, "nokey")),
			enc.str(numReqRequestID, "r3")))),
		"response code merges": httpLogs(entry(reqID, enc.msg(numEntryResponse,
			enc.msg(numRespCode, enc.varint(numWrapperValue, 70_000)), enc.msg(numRespCode),
			enc.varint(numRespBodyBytes, 10), enc.varint(numRespBodyBytes, 20)))),
		"empty last-tx duration wins over duration": httpLogs(entry(reqID, common(
			enc.msg(numCommonDuration, enc.varint(numTimeSeconds, 5)), enc.msg(numCommonTimeToLastDownstreamTx)))),
		"negative and huge durations": httpLogs(
			entry(reqID, common(enc.msg(numCommonDuration, enc.varint(numTimeSeconds, math.MaxUint64)))),
			entry(reqID, common(enc.msg(numCommonDuration, enc.varint(numTimeSeconds, math.MaxInt64), enc.varint(numTimeNanos, 999_999_999))))),
		"invalid and intermediate entries": httpLogs(entry(), entry(enc.varint(2, 1)),
			entry(reqID, common(enc.varint(numCommonIntermediate, 1))), entry(reqID)),
		"unknown fields and groups are skipped": concat(enc.group(9, enc.varint(1, 1)), httpLogs(entry(reqID,
			enc.group(7, enc.str(1, "x")), common(enc.str(200, "unknown"), enc.group(201, nil))))),
		"method out of range": httpLogs(entry(request(enc.varint(numReqMethod, 1<<40|3)), reqID)),
	} {
		t.Run(name, func(t *testing.T) {
			if err := proto.Unmarshal(data, &alsv3.StreamAccessLogsMessage{}); err != nil {
				t.Fatalf("test message is not valid protobuf: %v", err)
			}
			for _, p := range []ClientIPPolicy{ClientIPAnonymous, ClientIPAlways} {
				cfg := DefaultConfig()
				cfg.StoreClientIP = p
				sameAsReference(t, newMapper(cfg), data)
			}
		})
	}
}

func metaFieldWithValueFirst(key string, value wb) wb {
	return enc.msg(numStructFields, enc.msg(numMapEntryValue, value), enc.str(numMapEntryKey, key))
}

// TestWireInvalidUTF8 is where the decoder differs on purpose:
// proto.Unmarshal rejects the whole message; the decoder keeps every entry
// and stores U+FFFD for the broken bytes.
func TestWireInvalidUTF8(t *testing.T) {
	data := httpLogs(
		entry(request(enc.str(numReqPath, "/a\xffb?q=\xc3"), enc.str(numReqUserAgent, "bot\xfe"),
			enc.str(numReqRequestID, "r1"), header("x-user-id", "\xe2\x82"))),
		entry(request(enc.str(numReqRequestID, "r2"))),
	)
	if err := proto.Unmarshal(data, &alsv3.StreamAccessLogsMessage{}); err == nil {
		t.Fatal("proto.Unmarshal accepted invalid UTF-8; this test no longer shows a difference")
	}
	f, err := wireDecode(newMapper(DefaultConfig()), "", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.rows) != 2 {
		t.Fatalf("%d rows, want 2", len(f.rows))
	}
	r := f.rows[0]
	if r.Path != "/a\uFFFDb" || r.Query != "q=\uFFFD" || r.UserAgent != "bot\uFFFD" || r.UserID != "\uFFFD" {
		t.Errorf("row %+v", r)
	}
	for _, s := range []string{r.Path, r.Query, r.UserAgent, r.UserID} {
		if !utf8.ValidString(s) {
			t.Errorf("%q is not valid UTF-8", s)
		}
	}
}

func TestWireMalformed(t *testing.T) {
	good := message(t, "n", testEntry(0, 1))
	for name, data := range map[string][]byte{
		"truncated":          good[:len(good)-3],
		"length past end":    {byte(numMsgHTTPLogs<<3 | 2), 50, 1},
		"field number zero":  {0x02, 0x00},
		"overlong varint":    append(enc.varint(99, 0)[:1], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"unmatched group":    protowire.AppendTag(nil, 5, protowire.EndGroupType),
		"bad entry in batch": httpLogs(entry(reqIDFor("ok")), wb{0x0a, 0x05, 0x1a, 0x09}),
	} {
		t.Run(name, func(t *testing.T) {
			if err := proto.Unmarshal(data, &alsv3.StreamAccessLogsMessage{}); err == nil {
				t.Fatal("proto.Unmarshal accepts it: not malformed")
			}
			if _, err := wireDecode(newMapper(DefaultConfig()), "", data); err == nil {
				t.Fatal("decoder accepted malformed input")
			}
		})
	}
}

func reqIDFor(id string) wb { return request(enc.str(numReqRequestID, id)) }

func TestFlagString(t *testing.T) {
	for _, tc := range []struct {
		flags uint32
		uaex  bool
		want  string
	}{
		{0, false, ""},
		{0, true, "UAEX"},
		{1 << 16, false, "URX"},
		{1<<2 | 1<<16, true, "UH,UAEX,URX"},
		{1 << 30, false, ""}, // not a flag
	} {
		if got := flagString(tc.flags, tc.uaex); got != tc.want {
			t.Errorf("flagString(%b, %v) = %q, want %q", tc.flags, tc.uaex, got, tc.want)
		}
	}
}

func TestInternerBounded(t *testing.T) {
	var s interner
	for i := range 3 * internMax {
		v := fmt.Sprint("agent-", i)
		if got := s.get([]byte(v), maxLongField); got != v {
			t.Fatalf("got %q, want %q", got, v)
		}
	}
	if len(s.m) > internMax {
		t.Fatalf("interner holds %d values, cap %d", len(s.m), internMax)
	}
	long := strings.Repeat("é", 600)
	if got := s.get([]byte(long), maxLongField); len(got) > maxLongField || !utf8.ValidString(got) || got != capString(long, maxLongField) {
		t.Fatalf("capped value %d bytes", len(got))
	}
	if _, kept := s.m[capString(long, maxLongField)]; kept {
		t.Fatal("a value longer than internMaxLen was kept")
	}
	a, b := s.hostPort([]byte("::1"), 80), s.hostPort([]byte("::1"), 81)
	if a != "[::1]:80" || b != "[::1]:81" {
		t.Fatalf("host ports %q %q", a, b)
	}
}

// TestFrameReleasesHugeMessages: a stream does not keep the rows of one huge
// message for the rest of its life.
func TestFrameReleasesHugeMessages(t *testing.T) {
	mp := newMapper(DefaultConfig())
	f := &frame{mp: &mp, received: received}
	big := make([]*datav3.HTTPAccessLogEntry, 3*maxKeptRows)
	for i := range big {
		big[i] = testEntry(0, i)
	}
	for _, tc := range []struct {
		data    []byte
		rows    int
		maxCap  int
		comment string
	}{
		{message(t, "n", big...), len(big), 1 << 30, "huge message"},
		{message(t, "", testEntry(0, 1)), 1, maxKeptRows, "next message"},
	} {
		if err := f.decode(tc.data); err != nil {
			t.Fatal(err)
		}
		if len(f.rows) != tc.rows || cap(f.rows) > tc.maxCap {
			t.Fatalf("%s: %d rows, cap %d (want %d rows, cap <= %d)", tc.comment, len(f.rows), cap(f.rows), tc.rows, tc.maxCap)
		}
	}
	if f.rows[0].NodeID != "n" {
		t.Errorf("node id %q not carried over", f.rows[0].NodeID)
	}
}

// FuzzWireDecode is the differential fuzz test of the wire decoder: whatever
// proto.Unmarshal accepts, the decoder accepts and maps exactly as the
// reference does; whatever the decoder accepts makes rows that hold the row
// invariants.
func FuzzWireDecode(f *testing.F) {
	for _, tc := range mappingCases(f) {
		f.Add([]byte(message(f, tc.node, tc.entry)))
	}
	f.Add([]byte(message(f, "edge", testEntry(1, 2), benchEntry(f))))
	f.Add([]byte(concat(enc.msg(numMsgTCPLogs, enc.msg(numLogEntry)), httpLogs(entry(reqIDFor("x"))))))
	f.Add([]byte(httpLogs(entry(request(enc.str(numReqPath, "/\xff"))))))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		for _, p := range []ClientIPPolicy{ClientIPAnonymous, ClientIPAlways, ClientIPNever} {
			cfg := DefaultConfig()
			cfg.StoreClientIP = p
			mp := newMapper(cfg)
			sameAsReference(t, mp, data)
			fr, err := wireDecode(mp, "", data)
			if err != nil {
				continue
			}
			for i, r := range fr.rows {
				checkRow(t, r)
				if p == ClientIPNever && r.ClientIP != "" {
					t.Fatalf("policy never stored %q", r.ClientIP)
				}
				if r.ClientIP != "" && r.ClientIP != fr.peers[i] {
					t.Fatalf("stored IP %q differs from peer %q", r.ClientIP, fr.peers[i])
				}
				for _, s := range []string{r.NodeID, r.Path, r.Query, r.UserAgent, r.UserID, r.Plan, r.BlockReason, r.UpstreamHost} {
					if !utf8.ValidString(s) {
						t.Fatalf("invalid UTF-8 stored: %q", s)
					}
				}
			}
			back, err := decodeBatch(encodeBatch(batchOf(fr.rows)))
			if err != nil {
				t.Fatalf("spool round trip: %v", err)
			}
			backRows := batchRows(t, back)
			for i := range fr.rows {
				if backRows[i] != fr.rows[i] {
					t.Fatalf("spool round trip changed row %d:\n%+v\n%+v", i, fr.rows[i], backRows[i])
				}
			}
		}
	})
}
