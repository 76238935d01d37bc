package accesslog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"github.com/smartlayer/smartlayer/internal/testenv"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func authzMeta(t testing.TB, fields map[string]any) *corev3.Metadata {
	t.Helper()
	st, err := structpb.NewStruct(fields)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{extAuthzNamespace: st}}
}

// received stands in for the receive time of entries without start_time.
var received = time.Date(2026, 11, 25, 10, 0, 0, 123_456_789, time.UTC)

type mappingCase struct {
	node   string
	policy ClientIPPolicy
	entry  *datav3.HTTPAccessLogEntry
	want   Row
	// wantPeer is the IP feedback gets.
	wantPeer string
	// wantDate is the date column as ClickHouse prints it.
	wantDate string
}

func mappingCases(t testing.TB) map[string]mappingCase {
	start := time.Date(2026, 11, 24, 23, 59, 58, 987_654_321, time.UTC)
	// decided is a request for /api at start, answered status, with the
	// ext_authz metadata meta.
	decided := func(requestID string, status uint32, meta map[string]any) *datav3.HTTPAccessLogEntry {
		return &datav3.HTTPAccessLogEntry{
			CommonProperties: &datav3.AccessLogCommon{StartTime: timestamppb.New(start), Metadata: authzMeta(t, meta)},
			Request:          &datav3.HTTPRequestProperties{Path: "/api", RequestId: requestID},
			Response:         &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(status)},
		}
	}
	return map[string]mappingCase{
		"full deny from behaviour": {
			node: "envoy-1",
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: &datav3.AccessLogCommon{
					StartTime:                     timestamppb.New(start),
					DownstreamRemoteAddress:       sockAddr("203.0.113.7", 51000),
					DownstreamDirectRemoteAddress: sockAddr("10.0.0.1", 40000),
					TimeToLastDownstreamTxByte:    durationpb.New(1234567 * time.Microsecond),
					UpstreamRemoteAddress:         sockAddr("10.1.2.3", 8080),
					UpstreamCluster:               "backend",
					RouteName:                     "api_generate",
					ResponseFlags: &datav3.ResponseFlags{
						UnauthorizedDetails:        &datav3.ResponseFlags_Unauthorized{Reason: datav3.ResponseFlags_Unauthorized_EXTERNAL_SERVICE},
						UpstreamRetryLimitExceeded: true,
						NoHealthyUpstream:          true,
					},
					Metadata: authzMeta(t, map[string]any{"decision": "deny", "module": "behavior",
						"reason": "behavior.empty_user_agent", "score": 9.0, "status": 403.0, "shadow": false, "plan": "free",
						"rule": "behavior.empty_user_agent", "field": "header:user-agent", "excerpt": "",
						"behavior_score": 9.0, "payload_score": 2.0}),
				},
				Request: &datav3.HTTPRequestProperties{
					RequestMethod: corev3.RequestMethod_POST, Scheme: "https", Authority: "api.example.com",
					Path: "/api/generate/?q=1&x=%20y", UserAgent: "curl/8.0", Referer: "https://example.com/",
					RequestId: "req-full", RequestHeadersBytes: 300, RequestBodyBytes: 1000,
					RequestHeaders: map[string]string{"x-user-plan": "free"},
				},
				Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(403),
					ResponseHeadersBytes: 120, ResponseBodyBytes: 80},
			},
			want: Row{Unix: start.Unix(), Millis: 987, NodeID: "envoy-1", Method: "POST", Scheme: "https",
				Authority: "api.example.com", Path: "/api/generate/", Query: "q=1&x=%20y", RouteName: "api_generate",
				// authz decided without a user: a client-sent x-user-plan
				// is not the row's plan.
				Status: 403, DurationMs: 1234, BytesIn: 1300, BytesOut: 200, ClientIP: "203.0.113.7",
				Rule: "behavior.empty_user_agent", Field: "header:user-agent", BehaviorScore: 9, PayloadScore: 2,
				UserAgent: "curl/8.0", Referer: "https://example.com/", RequestID: "req-full",
				UpstreamCluster: "backend", UpstreamHost: "10.1.2.3:8080", ResponseFlags: "UH,UAEX,URX",
				Blocked: true, BlockModule: "behavior", BlockReason: "behavior.empty_user_agent", Score: 9,
				Decision: DecisionDenied},
			wantPeer: "203.0.113.7", wantDate: "2026-11-24",
		},
		"nil response code, IPv6, user known, no start time": {
			node: "envoy-2",
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: &datav3.AccessLogCommon{
					DownstreamRemoteAddress: sockAddr("2001:DB8:0:0::1", 443),
					Duration:                durationpb.New(15 * time.Millisecond),
					UpstreamRemoteAddress:   sockAddr("2001:db8::2", 9000),
					Metadata: authzMeta(t, map[string]any{"decision": "allow", "module": "", "reason": "",
						"score": 2.4, "status": 0.0, "user": "u-42", "plan": "premium"}),
				},
				Request: &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_GET, Path: "/v1/items",
					RequestId: "req-v6", RequestHeaders: map[string]string{"x-user-id": "u-42", "x-user-plan": "premium"}},
				Response: &datav3.HTTPResponseProperties{},
			},
			want: Row{Unix: received.Unix(), Millis: 123, NodeID: "envoy-2", Method: "GET", Path: "/v1/items",
				DurationMs: 15, UserID: "u-42", Plan: "premium", RequestID: "req-v6",
				UpstreamHost: "[2001:db8::2]:9000", Score: 2, Decision: DecisionAllowed},
			wantPeer: "2001:db8::1", wantDate: "2026-11-25",
		},
		"UAEX fallback without metadata, mapped IPv4, always store": {
			policy: ClientIPAlways,
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: &datav3.AccessLogCommon{
					StartTime:                     timestamppb.New(start.Add(2 * time.Second)),
					DownstreamDirectRemoteAddress: sockAddr("::ffff:198.51.100.9", 1),
					ResponseFlags: &datav3.ResponseFlags{UnauthorizedDetails: &datav3.ResponseFlags_Unauthorized{},
						RateLimited: true},
				},
				Request: &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_DELETE, Path: "/x?",
					RequestId: "req-uaex", RequestHeaders: map[string]string{"x-user-id": "u-1"}},
				Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(429)},
			},
			want: Row{Unix: start.Unix() + 2, Millis: 987, Method: "DELETE", Path: "/x", Status: 429,
				ClientIP: "198.51.100.9", UserID: "u-1", RequestID: "req-uaex", ResponseFlags: "RL,UAEX",
				Blocked: true, BlockReason: reasonExtAuthzDenied, Decision: DecisionDenied},
			wantPeer: "198.51.100.9", wantDate: "2026-11-25",
		},
		"UAEX with status 200 is not a block; never store IP": {
			policy: ClientIPNever,
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: &datav3.AccessLogCommon{
					StartTime:               timestamppb.New(start),
					DownstreamRemoteAddress: sockAddr("192.0.2.1", 1),
					ResponseFlags:           &datav3.ResponseFlags{UnauthorizedDetails: &datav3.ResponseFlags_Unauthorized{}},
				},
				Request:  &datav3.HTTPRequestProperties{RequestId: "req-uaex200"},
				Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200)},
			},
			want: Row{Unix: start.Unix(), Millis: 987, Status: 200, RequestID: "req-uaex200", ResponseFlags: "UAEX",
				Decision: DecisionUnchecked},
			wantPeer: "192.0.2.1", wantDate: "2026-11-24",
		},
		"missing everything but a path; garbage addresses and metadata types": {
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: &datav3.AccessLogCommon{
					StartTime:               &timestamppb.Timestamp{Seconds: -5},
					DownstreamRemoteAddress: sockAddr("not-an-ip", 1),
					Metadata:                authzMeta(t, map[string]any{"decision": "deny", "score": "high", "reason": 5.0}),
				},
				Request: &datav3.HTTPRequestProperties{Path: "/only-path", RequestId: "req-missing"},
			},
			want: Row{Unix: received.Unix(), Millis: 123, Path: "/only-path", RequestID: "req-missing",
				Blocked: true, Decision: DecisionDenied},
			wantPeer: "", wantDate: "2026-11-25",
		},
		"oversized fields are capped, score clamps": {
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: &datav3.AccessLogCommon{
					StartTime: timestamppb.New(start),
					Metadata:  authzMeta(t, map[string]any{"decision": "deny", "module": "payload", "score": 1e9}),
				},
				Request: &datav3.HTTPRequestProperties{Path: "/" + strings.Repeat("a", 5000) + "?" + strings.Repeat("é", 3000),
					UserAgent: strings.Repeat("u", 2000), RequestId: "req-big"},
				Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(70000)},
			},
			want: Row{Unix: start.Unix(), Millis: 987, Path: "/" + strings.Repeat("a", maxPathBytes-1),
				Query: strings.Repeat("é", maxQueryBytes/2), Status: 65535, UserAgent: strings.Repeat("u", maxLongField),
				RequestID: "req-big", Blocked: true, BlockModule: "payload", Score: 65535, Decision: DecisionDenied},
			wantDate: "2026-11-24",
		},
		"fail-open: allowed by the fail mode, not by a rule": {
			entry: decided("req-fo", 200, map[string]any{"decision": "allow", "module": "failmode",
				"reason": "failmode.budget_exceeded", "score": 0.0, "shadow": false}),
			want: Row{Unix: start.Unix(), Millis: 987, Path: "/api", Status: 200, RequestID: "req-fo",
				BlockModule: "failmode", BlockReason: "failmode.budget_exceeded", Decision: DecisionFailedOpen},
			wantDate: "2026-11-24",
		},
		"fail-closed: a 503 from the fail mode": {
			entry: decided("req-fc", 503, map[string]any{"decision": "deny", "module": "failmode",
				"reason": "failmode.stage_error", "status": 503.0}),
			want: Row{Unix: start.Unix(), Millis: 987, Path: "/api", Status: 503, RequestID: "req-fc", Blocked: true,
				BlockModule: "failmode", BlockReason: "failmode.stage_error", Decision: DecisionFailedClosed},
			wantDate: "2026-11-24",
		},
		"shadow: a shadow module would have denied": {
			entry: decided("req-sh", 200, map[string]any{"decision": "allow", "module": "payload",
				"reason": "payload.sqli", "score": 5.0, "shadow": true}),
			want: Row{Unix: start.Unix(), Millis: 987, Path: "/api", Status: 200, RequestID: "req-sh",
				BlockModule: "payload", BlockReason: "payload.sqli", Score: 5, Decision: DecisionShadow},
			wantDate: "2026-11-24",
		},
		"shadow flag of the wrong type is not shadow": {
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: &datav3.AccessLogCommon{
					StartTime: timestamppb.New(start),
					Metadata:  authzMeta(t, map[string]any{"decision": "allow", "shadow": "true"}),
				},
				Request: &datav3.HTTPRequestProperties{Path: "/api", RequestId: "req-sh2"},
			},
			want:     Row{Unix: start.Unix(), Millis: 987, Path: "/api", RequestID: "req-sh2", Decision: DecisionAllowed},
			wantDate: "2026-11-24",
		},
	}
}

// TestRowMapping checks the receiver's wire decoder and the reference
// mapping against the expected rows.
func TestRowMapping(t *testing.T) {
	for name, tc := range mappingCases(t) {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.StoreClientIP = tc.policy
			wire, wirePeer := wireRow(t, cfg, tc.node, tc.entry)
			ref, refPeer := newMapper(cfg).toRow(tc.node, tc.entry, received)
			for _, m := range []struct {
				name string
				row  Row
				peer string
			}{{"wire", wire, wirePeer}, {"reference", ref, refPeer}} {
				if m.row != tc.want {
					t.Errorf("%s row\n got %+v\nwant %+v", m.name, m.row, tc.want)
				}
				if m.peer != tc.wantPeer {
					t.Errorf("%s peer %q, want %q", m.name, m.peer, tc.wantPeer)
				}
				if d := m.row.date().Format(time.DateOnly); d != tc.wantDate {
					t.Errorf("%s date %s, want %s", m.name, d, tc.wantDate)
				}
			}
		})
	}
}

func TestToRowCustomHeaders(t *testing.T) {
	cfg := DefaultConfig()
	cfg.UserHeader, cfg.PlanHeader = "X-Account", "X-Tier"
	e := &datav3.HTTPAccessLogEntry{Request: &datav3.HTTPRequestProperties{
		RequestHeaders: map[string]string{"x-account": "a1", "x-tier": "gold", "x-user-id": "ignored"}}}
	got, _ := wireRow(t, cfg, "", e)
	if got.UserID != "a1" || got.Plan != "gold" {
		t.Errorf("user %q plan %q", got.UserID, got.Plan)
	}
}

func TestResponseFlagsEveryFlag(t *testing.T) {
	all := &datav3.ResponseFlags{FailedLocalHealthcheck: true, NoHealthyUpstream: true, UpstreamRequestTimeout: true,
		LocalReset: true, UpstreamRemoteReset: true, UpstreamConnectionFailure: true, UpstreamConnectionTermination: true,
		UpstreamOverflow: true, NoRouteFound: true, DelayInjected: true, FaultInjected: true, RateLimited: true,
		UnauthorizedDetails: &datav3.ResponseFlags_Unauthorized{}, RateLimitServiceError: true,
		DownstreamConnectionTermination: true, UpstreamRetryLimitExceeded: true, StreamIdleTimeout: true,
		InvalidEnvoyRequestHeaders: true, DownstreamProtocolError: true, UpstreamMaxStreamDurationReached: true,
		ResponseFromCacheFilter: true, NoFilterConfigFound: true, DurationTimeout: true, UpstreamProtocolError: true,
		NoClusterFound: true, OverloadManager: true, DnsResolutionFailure: true, DownstreamRemoteReset: true}
	want := "LH,UH,UT,LR,UR,UF,UC,UO,NR,DI,FI,RL,UAEX,RLSE,DC,URX,SI,IH,DPE,UMSDR,RFCF,NFCF,DT,UPE,NC,OM,DF,DR"
	if got, uaex := responseFlags(all); got != want || !uaex {
		t.Errorf("reference: got %q uaex=%v\nwant %q", got, uaex, want)
	}
	r, _ := wireRow(t, DefaultConfig(), "", &datav3.HTTPAccessLogEntry{
		CommonProperties: &datav3.AccessLogCommon{ResponseFlags: all}})
	if r.ResponseFlags != want {
		t.Errorf("wire: got %q\nwant %q", r.ResponseFlags, want)
	}
}

// TestRowsRoundTripClickHouse writes the mapped rows through the real writer
// into ClickHouse 18.16 and compares what comes back, column by column.
func TestRowsRoundTripClickHouse(t *testing.T) {
	testenv.ForEachClickHouse(t, testRowsRoundTripClickHouse)
}

func testRowsRoundTripClickHouse(t *testing.T, conn driver.Conn) {
	db := schemaDB(t, conn)
	ctx := testCtx(t)
	w := mustCHWriter(t, conn, db)
	cases := mappingCases(t)
	var rows []Row
	for _, tc := range cases {
		cfg := DefaultConfig()
		cfg.StoreClientIP = tc.policy
		r, _ := wireRow(t, cfg, tc.node, tc.entry)
		rows = append(rows, r)
	}
	if err := w.insert(ctx, batchOf(rows)); err != nil {
		t.Fatal(err)
	}
	got := readRows(t, conn, db)
	if len(got) != len(cases) {
		t.Fatalf("read %d rows, want %d", len(got), len(cases))
	}
	for name, tc := range cases {
		r, ok := got[tc.want.RequestID]
		if !ok {
			t.Errorf("%s: row %s missing", name, tc.want.RequestID)
			continue
		}
		if r.Row != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", name, r.Row, tc.want)
		}
		if r.date != tc.wantDate {
			t.Errorf("%s: date %s, want %s", name, r.date, tc.wantDate)
		}
	}
}

type storedRow struct {
	Row
	date string
}

// readRows reads access_log back keyed by request_id.
func readRows(t testing.TB, conn driver.Conn, db string) map[string]storedRow {
	t.Helper()
	rows, err := conn.Query(testCtx(t), `SELECT toUInt32(timestamp), timestamp_ms, toString(date), node_id, method,
		scheme, authority, path, query, route_name, status, duration_ms, bytes_in, bytes_out, client_ip, user_id,
		plan, user_agent, referer, request_id, upstream_cluster, upstream_host, response_flags, blocked,
		block_module, block_reason, score, decision, rule, field, excerpt, behavior_score, payload_score
		FROM `+db+`.access_log`)
	if err != nil {
		t.Fatalf("read rows: %v", err)
	}
	defer rows.Close()
	out := map[string]storedRow{}
	for rows.Next() {
		var r storedRow
		var unix uint32
		var blocked uint8
		if err := rows.Scan(&unix, &r.Millis, &r.date, &r.NodeID, &r.Method, &r.Scheme, &r.Authority, &r.Path,
			&r.Query, &r.RouteName, &r.Status, &r.DurationMs, &r.BytesIn, &r.BytesOut, &r.ClientIP, &r.UserID,
			&r.Plan, &r.UserAgent, &r.Referer, &r.RequestID, &r.UpstreamCluster, &r.UpstreamHost, &r.ResponseFlags,
			&blocked, &r.BlockModule, &r.BlockReason, &r.Score, &r.Decision,
			&r.Rule, &r.Field, &r.Excerpt, &r.BehaviorScore, &r.PayloadScore); err != nil {
			t.Fatalf("scan: %v", err)
		}
		r.Unix, r.Blocked = int64(unix), blocked == 1
		if _, dup := out[r.RequestID]; dup {
			t.Errorf("request_id %q stored twice", r.RequestID)
		}
		out[r.RequestID] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSpoolVersion1 reads a batch spooled by a build without the decision
// column: each row's decision follows from its other columns.
func TestSpoolVersion1(t *testing.T) {
	rows := []Row{
		{Unix: 1795564798, Path: "/a", Blocked: true, BlockModule: "behavior", BlockReason: "behavior.request_burst"},
		{Unix: 1795564798, Path: "/b", BlockModule: "failmode", BlockReason: "failmode.budget_exceeded"},
		{Unix: 1795564798, Path: "/c", Blocked: true, BlockModule: "failmode", BlockReason: "failmode.stage_error"},
		{Unix: 1795564798, Path: "/d", BlockModule: "payload", BlockReason: "payload.sqli"},
		{Unix: 1795564798, Path: "/e"},
	}
	want := []string{DecisionDenied, DecisionFailedOpen, DecisionFailedClosed, DecisionShadow, DecisionAllowed}
	// Version 1 rows are current rows without the trailing decision (v2)
	// and explanation (v3): six fields that are one zero byte each when
	// empty.
	buf := make([]byte, spoolHeaderLen)
	copy(buf, spoolMagic)
	buf[4] = 1
	binary.LittleEndian.PutUint32(buf[22:26], uint32(len(rows)))
	for i := range rows {
		r := appendRowV3(nil, &rows[i])
		buf = append(buf, r[:len(r)-6]...)
	}
	binary.LittleEndian.PutUint32(buf[26:30], uint32(len(buf)-spoolHeaderLen))
	buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, crcTable))
	b, err := decodeBatch(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range batchRows(t, b) {
		if r.Decision != want[i] || r.Path != rows[i].Path {
			t.Errorf("row %d: path %q decision %q, want %q %q", i, r.Path, r.Decision, rows[i].Path, want[i])
		}
	}
	// And the current version round-trips the columns.
	rows[0].Decision = DecisionUnchecked
	rows[0].Rule, rows[0].Field, rows[0].Excerpt = "payload.sqli.union", "query:q", "1 union select"
	rows[0].BehaviorScore, rows[0].PayloadScore = 4, 3
	b, err = decodeBatch(encodeBatch(batchOf(rows[:1])))
	if err != nil {
		t.Fatal(err)
	}
	if got := batchRows(t, b); got[0] != rows[0] {
		t.Fatalf("v3 round trip: %+v, want %+v", got, rows[0])
	}
}

// appendRowV3 writes a row as spool versions 1–3 did: every string a
// literal (version 1 and 2 rows are its prefixes).
func appendRowV3(b []byte, r *Row) []byte {
	b = binary.AppendVarint(b, r.Unix)
	b = binary.AppendUvarint(b, uint64(r.Millis))
	for _, s := range [...]string{r.NodeID, r.Method, r.Scheme, r.Authority, r.Path, r.Query, r.RouteName} {
		b = appendString(b, s)
	}
	for _, v := range [...]uint64{uint64(r.Status), uint64(r.DurationMs), r.BytesIn, r.BytesOut} {
		b = binary.AppendUvarint(b, v)
	}
	for _, s := range [...]string{r.ClientIP, r.UserID, r.Plan, r.UserAgent, r.Referer, r.RequestID,
		r.UpstreamCluster, r.UpstreamHost, r.ResponseFlags} {
		b = appendString(b, s)
	}
	blocked := uint64(0)
	if r.Blocked {
		blocked = 1
	}
	b = binary.AppendUvarint(b, blocked)
	b = appendString(b, r.BlockModule)
	b = appendString(b, r.BlockReason)
	b = binary.AppendUvarint(b, uint64(r.Score))
	for _, s := range [...]string{r.Decision, r.Rule, r.Field, r.Excerpt} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(r.BehaviorScore))
	return binary.AppendUvarint(b, uint64(r.PayloadScore))
}

// spoolFileV3 renders rows as a version 3 spool file.
func spoolFileV3(rows []Row) []byte {
	buf := make([]byte, spoolHeaderLen)
	copy(buf, spoolMagic)
	buf[4] = 3
	binary.LittleEndian.PutUint32(buf[22:26], uint32(len(rows)))
	for i := range rows {
		buf = appendRowV3(buf, &rows[i])
	}
	binary.LittleEndian.PutUint32(buf[26:30], uint32(len(buf)-spoolHeaderLen))
	return binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, crcTable))
}

// TestBatchDictionary: low-cardinality values are written once per batch
// and referred to afterwards, whichever stream's copy a row holds and
// however the encoder's cache slots collide; rows decode to what was
// encoded, and a version 3 file (no dictionary) still reads.
func TestBatchDictionary(t *testing.T) {
	ua := strings.Repeat("Mozilla/5.0 ", 9)
	otherStream := strings.Clone(ua) // same value, another string
	rows := make([]Row, 0, 400)
	for i := range 400 {
		r := Row{Unix: 1_764_000_000 + int64(i), NodeID: "node-1", Method: "GET", Scheme: "https", Authority: "api.example.com",
			Path: fmt.Sprintf("/p/%d", i), RouteName: fmt.Sprintf("route%d", i%50), UserAgent: ua, Referer: ua[:20], // the same bytes, shorter
			RequestID: fmt.Sprintf("req-%d", i), Decision: DecisionAllowed, UpstreamCluster: "app", Plan: "pro"}
		if i%3 == 0 {
			r.UserAgent = otherStream
		}
		if i%7 == 0 {
			r.Decision, r.BlockModule, r.BlockReason, r.Rule, r.Field = DecisionDenied, "payload", "payload.sqli", "payload.sqli.union", "query:q"
			r.Blocked = true
		}
		rows = append(rows, r)
	}
	tests := map[string]func(t *testing.T) *batch{
		"one append": func(t *testing.T) *batch { return batchOf(rows) },
		"many appends": func(t *testing.T) *batch {
			b := &batch{}
			for i := 0; i < len(rows); i += 13 {
				b.append(rows[i:min(i+13, len(rows))])
			}
			return b
		},
		"through the spool": func(t *testing.T) *batch {
			b, err := decodeBatch(encodeBatch(batchOf(rows)))
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		"version 3 file": func(t *testing.T) *batch {
			b, err := decodeBatch(spoolFileV3(rows))
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	}
	plain := 0
	for i := range rows {
		plain += len(appendRowV3(nil, &rows[i]))
	}
	for name, mk := range tests {
		t.Run(name, func(t *testing.T) {
			b := mk(t)
			if got := batchRows(t, b); !slices.Equal(got, rows) {
				t.Fatalf("decoded rows differ from the encoded ones")
			}
			// The user agent (108 bytes) is written twice (one per
			// string), not 400 times. A version 3 file's rows are
			// encoded again as they were read: one string per value.
			if name != "version 3 file" && len(b.data) > plain/3 {
				t.Fatalf("%d bytes, %d without the dictionary: values repeated", len(b.data), plain)
			}
		})
	}
}

// rowStart is an encoded row up to its first dictionary field (node id).
func rowStart() []byte {
	b := binary.AppendVarint(nil, 1_764_000_000)
	return binary.AppendUvarint(b, 0) // millis
}

func TestBatchDictionaryCorrupt(t *testing.T) {
	tests := map[string][]byte{
		// NodeID refers to entry 0 of an empty dictionary.
		"reference before any entry": binary.AppendUvarint(rowStart(), 0<<1|1),
		"literal past the end":       binary.AppendUvarint(rowStart(), 200<<1),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			b := &batch{n: 1, data: data}
			if _, err := b.rows(); err == nil {
				t.Fatal("decoded a corrupt row")
			}
		})
	}
}

// Two values whose cache slots collide, alternating row by row (one
// stream's user agent and another's copy), are both written once.
func TestDictionaryCollidingValues(t *testing.T) {
	ua := strings.Repeat("Mozilla/5.0 ", 9)
	pairOf := func(s string) uintptr {
		return (uintptr(unsafe.Pointer(unsafe.StringData(s)))>>3 ^ uintptr(len(s))) % (dictSlots / 2)
	}
	var a, b string
	seen := map[uintptr]string{}
	for range 10000 {
		c := strings.Clone(ua)
		if prev, ok := seen[pairOf(c)]; ok {
			a, b = prev, c
			break
		}
		seen[pairOf(c)] = c
	}
	if a == "" {
		t.Fatal("no two copies share a cache pair: the test proves nothing")
	}
	var e rowEncoder
	var buf []byte
	for i := range 100 {
		s := a
		if i%2 == 1 {
			s = b
		}
		buf = e.appendDict(buf, s)
	}
	if e.next != 2 {
		t.Fatalf("%d dictionary entries for two alternating values, want 2", e.next)
	}
}
