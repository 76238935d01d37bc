package accesslog

import (
	"bytes"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The receiver decodes StreamAccessLogsMessage straight from the wire into
// rows. proto.Unmarshal builds some 20 objects and a map per entry, only for
// the mapping to read a dozen fields and drop them: it was half of the
// receiver's CPU. The decoder reads the fields a row needs and skips the
// rest, with proto3's decoding rules (last scalar wins, repeated
// sub-messages merge, a later oneof member replaces an earlier one, a field
// with an unexpected wire type is unknown, a duplicate map key replaces).
// wire_test.go checks it against proto.Unmarshal and the reference mapping
// over Envoy-shaped entries and fuzzed bytes.
//
// It is more lenient than proto.Unmarshal in one way: invalid UTF-8 in a
// string (which makes proto.Unmarshal reject the whole message, 64 entries
// or more) is stored with U+FFFD in its place, and fields the row does not
// use are skipped unchecked.

// Field numbers, from the generated descriptors (wire_test.go checks each).
const (
	// envoy.service.accesslog.v3.StreamAccessLogsMessage and its parts
	numMsgIdentifier = 1
	numMsgHTTPLogs   = 2
	numMsgTCPLogs    = 3
	numIdentNode     = 1
	numNodeID        = 1
	numLogEntry      = 1 // HTTPAccessLogEntries and TCPAccessLogEntries

	// envoy.data.accesslog.v3.HTTPAccessLogEntry
	numEntryCommon   = 1
	numEntryRequest  = 3
	numEntryResponse = 4

	// envoy.data.accesslog.v3.AccessLogCommon
	numCommonDownstreamRemote       = 2
	numCommonStartTime              = 5
	numCommonTimeToLastDownstreamTx = 12
	numCommonUpstreamRemote         = 13
	numCommonUpstreamCluster        = 15
	numCommonResponseFlags          = 16
	numCommonMetadata               = 17
	numCommonRouteName              = 19
	numCommonDownstreamDirectRemote = 20
	numCommonDuration               = 23
	numCommonIntermediate           = 27

	// envoy.data.accesslog.v3.HTTPRequestProperties
	numReqMethod       = 1
	numReqScheme       = 2
	numReqAuthority    = 3
	numReqPath         = 5
	numReqUserAgent    = 6
	numReqReferer      = 7
	numReqRequestID    = 9
	numReqHeadersBytes = 11
	numReqBodyBytes    = 12
	numReqHeaders      = 13

	// envoy.data.accesslog.v3.HTTPResponseProperties
	numRespCode         = 1
	numRespHeadersBytes = 2
	numRespBodyBytes    = 3

	// envoy.data.accesslog.v3.ResponseFlags: the one message-typed flag
	numFlagsUnauthorized = 13

	// envoy.config.core.v3.Address (oneof address) and SocketAddress
	numAddrSocket    = 1
	numAddrPipe      = 2
	numAddrInternal  = 3
	numSockAddress   = 2
	numSockPortValue = 3
	numSockNamedPort = 4

	// envoy.config.core.v3.Metadata, google.protobuf.Struct and Value
	numMetaFilter    = 1
	numStructFields  = 1
	numValueNull     = 1
	numValueNumber   = 2
	numValueString   = 3
	numValueBool     = 4
	numValueStruct   = 5
	numValueList     = 6
	numMapEntryKey   = 1
	numMapEntryValue = 2

	// google.protobuf.Timestamp and Duration; UInt32Value
	numTimeSeconds  = 1
	numTimeNanos    = 2
	numWrapperValue = 1
)

// frame is one StreamAccessLogsMessage as the receiver needs it. The ALS
// codec decodes into it (RecvMsg); a stream reuses one frame, which also
// carries the stream's node id from message to message.
type frame struct {
	mp       *mapper
	received time.Time // stands in for a missing start_time
	nodeID   string    // from the stream's first message (Envoy sends it once)
	strs     interner

	// Per message, reset by decode.
	rows                  []Row
	peers                 []string // peer IP of rows[i], whatever the storage policy
	tcp                   int      // TCP entries: counted, not stored
	invalid, intermediate int
}

// logKind is the member of StreamAccessLogsMessage's log_entries oneof.
type logKind uint8

const (
	logNone logKind = iota
	logHTTP
	logTCP
)

// decode replaces the frame's per-message contents with b's.
func (f *frame) decode(b []byte) error {
	f.rows, f.peers = f.rows[:0], f.peers[:0]
	f.tcp, f.invalid, f.intermediate = 0, 0, 0
	kind := logNone
	hasIdent := false
	var node []byte
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return err
		}
		if fl.typ != protowire.BytesType {
			continue
		}
		switch fl.num {
		case numMsgIdentifier:
			hasIdent = true
			if err := decodeIdentifier(fl.b, &node); err != nil {
				return err
			}
		case numMsgHTTPLogs:
			if kind == logTCP {
				f.tcp = 0
			}
			kind = logHTTP
			if err := f.decodeHTTPLogs(fl.b); err != nil {
				return err
			}
		case numMsgTCPLogs:
			if kind == logHTTP { // a later oneof member replaces the entries
				f.rows, f.peers = f.rows[:0], f.peers[:0]
				f.invalid, f.intermediate = 0, 0
			}
			kind = logTCP
			n, err := countEntries(fl.b)
			if err != nil {
				return err
			}
			f.tcp += n
		}
	}
	if hasIdent {
		f.nodeID = f.strs.get(node, maxShortField)
	}
	for i := range f.rows {
		f.rows[i].NodeID = f.nodeID
	}
	return nil
}

func decodeIdentifier(b []byte, node *[]byte) error {
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return err
		}
		if fl.num == numIdentNode && fl.typ == protowire.BytesType {
			if err := forBytes(fl.b, numNodeID, func(v []byte) { *node = v }); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *frame) decodeHTTPLogs(b []byte) error {
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return err
		}
		if fl.num != numLogEntry || fl.typ != protowire.BytesType {
			continue
		}
		e := wireEntry{userHeader: f.mp.userHeader, planHeader: f.mp.planHeader}
		if err := e.decode(fl.b); err != nil {
			return err
		}
		switch {
		case !e.hasCommon && !e.hasRequest && !e.hasResponse:
			f.invalid++
		case e.intermediate:
			// A periodic log of a request still in flight: its final
			// entry follows, and storing both would count it twice.
			f.intermediate++
		default:
			r, peer := f.row(&e)
			f.rows = append(f.rows, r)
			f.peers = append(f.peers, peer)
		}
	}
	return nil
}

func countEntries(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return 0, err
		}
		if fl.num == numLogEntry && fl.typ == protowire.BytesType {
			n++
		}
	}
	return n, nil
}

// wireEntry holds what a row needs from one HTTPAccessLogEntry. Byte slices
// point into the message and become strings only once the entry is whole.
type wireEntry struct {
	hasCommon, hasRequest, hasResponse bool
	intermediate                       bool

	start                    wireTime
	lastTx, duration         wireTime
	downstream, direct, upst wireAddr
	upstreamCluster, route   []byte
	flags                    uint32 // bit n: ResponseFlags field n is true
	uaex                     bool   // unauthorized_details present
	authz                    authzFields

	method                             int32
	scheme, authority, path, userAgent []byte
	referer, requestID, user, plan     []byte
	reqHeaderBytes, reqBodyBytes       uint64
	status                             uint32
	respHeaderBytes, respBodyBytes     uint64

	// userHeader and planHeader are the request_headers keys (lower
	// case) that hold the user id and plan.
	userHeader, planHeader string
}

type wireTime struct {
	set   bool // present (Duration presence matters: see row)
	sec   int64
	nanos int32
}

type wireAddr struct {
	kind     uint8 // Address oneof member: numAddrSocket, numAddrPipe, numAddrInternal or 0
	host     []byte
	portKind uint8 // SocketAddress port_specifier member: numSockPortValue, numSockNamedPort or 0
	port     uint32
}

// wireValue is a google.protobuf.Value: kind is its oneof member.
type wireValue struct {
	kind uint8
	num  float64
	str  []byte
}

func (v wireValue) stringValue() []byte {
	if v.kind == numValueString {
		return v.str
	}
	return nil
}

func (v wireValue) numberValue() float64 {
	if v.kind == numValueNumber {
		return v.num
	}
	return 0
}

// authzFields are the ext_authz dynamic metadata fields a row keeps.
type authzFields struct {
	decision, module, reason, score wireValue
}

func (e *wireEntry) decode(b []byte) error {
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return err
		}
		if fl.typ != protowire.BytesType {
			continue
		}
		switch fl.num {
		case numEntryCommon:
			e.hasCommon = true
			err = e.decodeCommon(fl.b)
		case numEntryRequest:
			e.hasRequest = true
			err = e.decodeRequest(fl.b)
		case numEntryResponse:
			e.hasResponse = true
			err = e.decodeResponse(fl.b)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (e *wireEntry) decodeCommon(b []byte) error {
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return err
		}
		if fl.typ == protowire.VarintType {
			if fl.num == numCommonIntermediate {
				e.intermediate = fl.v != 0
			}
			continue
		}
		if fl.typ != protowire.BytesType {
			continue
		}
		switch fl.num {
		case numCommonDownstreamRemote:
			err = e.downstream.decode(fl.b)
		case numCommonDownstreamDirectRemote:
			err = e.direct.decode(fl.b)
		case numCommonUpstreamRemote:
			err = e.upst.decode(fl.b)
		case numCommonStartTime:
			err = e.start.decode(fl.b)
		case numCommonTimeToLastDownstreamTx:
			err = e.lastTx.decode(fl.b)
		case numCommonDuration:
			err = e.duration.decode(fl.b)
		case numCommonUpstreamCluster:
			e.upstreamCluster = fl.b
		case numCommonRouteName:
			e.route = fl.b
		case numCommonResponseFlags:
			err = e.decodeFlags(fl.b)
		case numCommonMetadata:
			err = e.decodeMetadata(fl.b)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (t *wireTime) decode(b []byte) error {
	t.set = true
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return err
		}
		if fl.typ != protowire.VarintType {
			continue
		}
		switch fl.num {
		case numTimeSeconds:
			t.sec = int64(fl.v)
		case numTimeNanos:
			t.nanos = int32(fl.v)
		}
	}
	return nil
}

func (a *wireAddr) decode(b []byte) error {
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return err
		}
		if fl.typ != protowire.BytesType {
			continue
		}
		switch fl.num {
		case numAddrSocket:
			if a.kind != numAddrSocket { // a new member starts empty
				*a = wireAddr{kind: numAddrSocket}
			}
			if err := a.decodeSocket(fl.b); err != nil {
				return err
			}
		case numAddrPipe, numAddrInternal:
			*a = wireAddr{kind: uint8(fl.num)}
		}
	}
	return nil
}

func (a *wireAddr) decodeSocket(b []byte) error {
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return err
		}
		switch {
		case fl.num == numSockAddress && fl.typ == protowire.BytesType:
			a.host = fl.b
		case fl.num == numSockPortValue && fl.typ == protowire.VarintType:
			a.portKind, a.port = numSockPortValue, uint32(fl.v)
		case fl.num == numSockNamedPort && fl.typ == protowire.BytesType:
			a.portKind, a.port = numSockNamedPort, 0
		}
	}
	return nil
}

func (e *wireEntry) decodeFlags(b []byte) error {
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return err
		}
		switch {
		case fl.num == numFlagsUnauthorized && fl.typ == protowire.BytesType:
			e.uaex = true
		case fl.typ == protowire.VarintType && fl.num < protowire.Number(len(flagNames)) && flagNames[fl.num] != "":
			if fl.v != 0 {
				e.flags |= 1 << fl.num
			} else {
				e.flags &^= 1 << fl.num
			}
		}
	}
	return nil
}

// decodeMetadata reads filter_metadata, keeping the ext_authz namespace.
func (e *wireEntry) decodeMetadata(b []byte) error {
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return err
		}
		if fl.num != numMetaFilter || fl.typ != protowire.BytesType {
			continue
		}
		// A map entry: key and value may come in any order, repeat, or
		// be missing; the value starts empty and repeats merge.
		var key []byte
		var st authzFields
		for eb := fl.b; len(eb) > 0; {
			kv, err := nextField(&eb)
			if err != nil {
				return err
			}
			if kv.typ != protowire.BytesType {
				continue
			}
			switch kv.num {
			case numMapEntryKey:
				key = kv.b
			case numMapEntryValue:
				if err := st.decodeStruct(kv.b); err != nil {
					return err
				}
			}
		}
		if string(key) == extAuthzNamespace {
			e.authz = st // a repeated key replaces the earlier value
		}
	}
	return nil
}

func (st *authzFields) decodeStruct(b []byte) error {
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return err
		}
		if fl.num != numStructFields || fl.typ != protowire.BytesType {
			continue
		}
		var key []byte
		var v wireValue
		for eb := fl.b; len(eb) > 0; {
			kv, err := nextField(&eb)
			if err != nil {
				return err
			}
			switch {
			case kv.num == numMapEntryKey && kv.typ == protowire.BytesType:
				key = kv.b
			case kv.num == numMapEntryValue && kv.typ == protowire.BytesType:
				if err := v.decode(kv.b); err != nil {
					return err
				}
			}
		}
		switch string(key) {
		case "decision":
			st.decision = v
		case "module":
			st.module = v
		case "reason":
			st.reason = v
		case "score":
			st.score = v
		}
	}
	return nil
}

func (v *wireValue) decode(b []byte) error {
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return err
		}
		switch {
		case fl.num == numValueNumber && fl.typ == protowire.Fixed64Type:
			v.kind, v.num = numValueNumber, math.Float64frombits(fl.v)
		case fl.num == numValueString && fl.typ == protowire.BytesType:
			v.kind, v.str = numValueString, fl.b
		case (fl.num == numValueNull || fl.num == numValueBool) && fl.typ == protowire.VarintType,
			(fl.num == numValueStruct || fl.num == numValueList) && fl.typ == protowire.BytesType:
			v.kind = uint8(fl.num)
		}
	}
	return nil
}

func (e *wireEntry) decodeRequest(b []byte) error {
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return err
		}
		if fl.typ == protowire.VarintType {
			switch fl.num {
			case numReqMethod:
				e.method = int32(fl.v)
			case numReqHeadersBytes:
				e.reqHeaderBytes = fl.v
			case numReqBodyBytes:
				e.reqBodyBytes = fl.v
			}
			continue
		}
		if fl.typ != protowire.BytesType {
			continue
		}
		switch fl.num {
		case numReqScheme:
			e.scheme = fl.b
		case numReqAuthority:
			e.authority = fl.b
		case numReqPath:
			e.path = fl.b
		case numReqUserAgent:
			e.userAgent = fl.b
		case numReqReferer:
			e.referer = fl.b
		case numReqRequestID:
			e.requestID = fl.b
		case numReqHeaders:
			var key, val []byte
			for eb := fl.b; len(eb) > 0; {
				kv, err := nextField(&eb)
				if err != nil {
					return err
				}
				if kv.typ != protowire.BytesType {
					continue
				}
				switch kv.num {
				case numMapEntryKey:
					key = kv.b
				case numMapEntryValue:
					val = kv.b
				}
			}
			// A repeated header key replaces the earlier value.
			if string(key) == e.userHeader {
				e.user = val
			}
			if string(key) == e.planHeader {
				e.plan = val
			}
		}
	}
	return nil
}

func (e *wireEntry) decodeResponse(b []byte) error {
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return err
		}
		switch {
		case fl.num == numRespCode && fl.typ == protowire.BytesType:
			if err := forVarint(fl.b, numWrapperValue, func(v uint64) { e.status = uint32(v) }); err != nil {
				return err
			}
		case fl.num == numRespHeadersBytes && fl.typ == protowire.VarintType:
			e.respHeaderBytes = fl.v
		case fl.num == numRespBodyBytes && fl.typ == protowire.VarintType:
			e.respBodyBytes = fl.v
		}
	}
	return nil
}

// row maps a decoded entry (toRow's rules in row_ref_test.go are the
// reference; wire_test.go holds the two together).
func (f *frame) row(e *wireEntry) (r Row, peerIP string) {
	s := &f.strs
	r.Unix, r.Millis = f.received.Unix(), uint16(f.received.Nanosecond()/1e6)
	if st := e.start; st.sec > 0 && st.sec < maxUnix {
		r.Unix = st.sec
		if n := st.nanos; n > 0 && n < 1e9 {
			r.Millis = uint16(n / 1e6)
		} else {
			r.Millis = 0
		}
	}

	r.Method = methodName(corev3.RequestMethod(e.method))
	r.Scheme = s.get(e.scheme, maxShortField)
	r.Authority = s.get(e.authority, maxShortField)
	path, query, _ := bytes.Cut(e.path, []byte{'?'})
	r.Path, r.Query = toString(path, maxPathBytes), toString(query, maxQueryBytes)
	r.RouteName = s.get(e.route, maxShortField)

	r.Status = uint16(min(e.status, math.MaxUint16))
	d := e.lastTx
	if !d.set {
		d = e.duration
	}
	if d.set {
		if ms := (&durationpb.Duration{Seconds: d.sec, Nanos: d.nanos}).AsDuration().Milliseconds(); ms > 0 {
			r.DurationMs = uint32(min(ms, math.MaxUint32))
		}
	}
	r.BytesIn = e.reqHeaderBytes + e.reqBodyBytes
	r.BytesOut = e.respHeaderBytes + e.respBodyBytes

	peerIP = e.downstream.ip()
	if peerIP == "" {
		peerIP = e.direct.ip()
	}
	r.UserID = toString(e.user, maxShortField)
	r.Plan = s.get(e.plan, maxShortField)
	switch f.mp.clientIP {
	case ClientIPAlways:
		r.ClientIP = peerIP
	case ClientIPAnonymous:
		if r.UserID == "" {
			r.ClientIP = peerIP
		}
	}
	r.UserAgent = s.get(e.userAgent, maxLongField)
	r.Referer = s.get(e.referer, maxLongField)
	r.RequestID = toString(e.requestID, maxShortField)
	r.UpstreamCluster = s.get(e.upstreamCluster, maxShortField)
	r.UpstreamHost = e.upst.hostPort(s)

	r.ResponseFlags = flagString(e.flags, e.uaex)
	if decision := e.authz.decision.stringValue(); len(decision) > 0 {
		r.Blocked = string(decision) == "deny"
		r.BlockModule = s.get(e.authz.module.stringValue(), maxShortField)
		r.BlockReason = s.get(e.authz.reason.stringValue(), maxShortField)
		r.Score = clampScore(e.authz.score.numberValue())
	} else if e.uaex && (r.Status == 403 || r.Status == 429) {
		r.Blocked = true
		r.BlockReason = reasonExtAuthzDenied
	}
	return r, peerIP
}

// ip is the canonical client IP of a socket address ("" otherwise).
func (a *wireAddr) ip() string {
	if a.kind != numAddrSocket || len(a.host) == 0 {
		return ""
	}
	return canonicalIP(string(a.host))
}

func (a *wireAddr) hostPort(s *interner) string {
	if a.kind != numAddrSocket || len(a.host) == 0 {
		return ""
	}
	port := uint32(0)
	if a.portKind == numSockPortValue {
		port = a.port
	}
	return s.hostPort(capBytes(a.host, maxShortField), port)
}

// canonicalIP returns s as the canonical IP text ("" when s is no IP).
// IPv4-mapped IPv6 is unmapped so that feedback keys match the IP authz
// sees; zones are dropped.
func canonicalIP(s string) string {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return ""
	}
	switch {
	case ip.Is4In6():
		return ip.Unmap().String()
	case ip.Zone() != "":
		return ip.WithZone("").String()
	case ip.Is4():
		return s // ParseAddr accepts only the canonical dotted form
	}
	return ip.String()
}

// hostPortString renders host:port, bracketing IPv6 hosts; port 0 is left
// out.
func hostPortString(host string, port uint32) string {
	if host == "" || port == 0 {
		return host
	}
	if strings.IndexByte(host, ':') >= 0 {
		return "[" + host + "]:" + strconv.FormatUint(uint64(port), 10)
	}
	return host + ":" + strconv.FormatUint(uint64(port), 10)
}

// flagNames are Envoy's short response flag names (%RESPONSE_FLAGS%) by
// ResponseFlags field number; Envoy prints them in field order.
var flagNames = [...]string{
	1: "LH", 2: "UH", 3: "UT", 4: "LR", 5: "UR", 6: "UF", 7: "UC", 8: "UO", 9: "NR", 10: "DI",
	11: "FI", 12: "RL", numFlagsUnauthorized: "UAEX", 14: "RLSE", 15: "DC", 16: "URX", 17: "SI", 18: "IH",
	19: "DPE", 20: "UMSDR", 21: "RFCF", 22: "NFCF", 23: "DT", 24: "UPE", 25: "NC", 26: "OM", 27: "DF", 28: "DR",
}

// flagString renders set flags comma-joined in Envoy's order.
func flagString(flags uint32, uaex bool) string {
	if uaex {
		flags |= 1 << numFlagsUnauthorized
	}
	if flags == 0 {
		return ""
	}
	if flags&(flags-1) == 0 { // one flag, the common case: no allocation
		for n, name := range flagNames {
			if flags == 1<<n {
				return name
			}
		}
	}
	var sb strings.Builder
	for n, name := range flagNames {
		if flags&(1<<n) == 0 || name == "" {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(name)
	}
	return sb.String()
}

// wireField is one decoded field: v holds varint and fixed values, b the
// bytes of a length-delimited one.
type wireField struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

// nextField consumes one field from *b. Malformed input (truncation, a bad
// tag, an unmatched group) is an error, as for proto.Unmarshal.
func nextField(b *[]byte) (wireField, error) {
	num, typ, n := protowire.ConsumeTag(*b)
	if n < 0 {
		return wireField{}, protowire.ParseError(n)
	}
	f := wireField{num: num, typ: typ}
	rest := (*b)[n:]
	var m int
	switch typ {
	case protowire.VarintType:
		f.v, m = protowire.ConsumeVarint(rest)
	case protowire.Fixed64Type:
		f.v, m = protowire.ConsumeFixed64(rest)
	case protowire.BytesType:
		f.b, m = protowire.ConsumeBytes(rest)
	default:
		m = protowire.ConsumeFieldValue(num, typ, rest)
	}
	if m < 0 {
		return wireField{}, protowire.ParseError(m)
	}
	*b = rest[m:]
	return f, nil
}

// forBytes calls fn with each length-delimited field num of message b.
func forBytes(b []byte, num protowire.Number, fn func([]byte)) error {
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return err
		}
		if fl.num == num && fl.typ == protowire.BytesType {
			fn(fl.b)
		}
	}
	return nil
}

// forVarint calls fn with each varint field num of message b.
func forVarint(b []byte, num protowire.Number, fn func(uint64)) error {
	for len(b) > 0 {
		fl, err := nextField(&b)
		if err != nil {
			return err
		}
		if fl.num == num && fl.typ == protowire.VarintType {
			fn(fl.v)
		}
	}
	return nil
}

// capBytes truncates b to at most n bytes without splitting a UTF-8
// sequence (capString's rule).
func capBytes(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	i := n
	for i > 0 && i > n-4 && b[i]&0xC0 == 0x80 {
		i--
	}
	return b[:i]
}

// toString copies b, capped at n bytes, into valid UTF-8.
func toString(b []byte, n int) string {
	b = capBytes(b, n)
	if utf8.Valid(b) {
		return string(b)
	}
	return capString(strings.ToValidUTF8(string(b), "\uFFFD"), n)
}

// interner shares the strings of low-cardinality fields (scheme, authority,
// route, user agent, plan, cluster, upstream host, ...) across the rows of a
// stream: fewer allocations, and batches waiting for ClickHouse hold each
// value once.
type interner struct {
	m         map[string]string
	hostPorts map[string]hostPort // by host
}

type hostPort struct {
	port uint32
	s    string
}

// internMax bounds each cache; a full cache starts over, so a stream of
// ever-new values costs one map clear per internMax values.
const internMax = 4096

// get returns b capped at n bytes as valid UTF-8, shared when seen before.
func (s *interner) get(b []byte, n int) string {
	if len(b) == 0 {
		return ""
	}
	b = capBytes(b, n)
	if v, ok := s.m[string(b)]; ok { // no allocation for the lookup
		return v
	}
	v := toString(b, n)
	if s.m == nil || len(s.m) >= internMax {
		s.m = make(map[string]string, 256)
	}
	s.m[string(b)] = v
	return v
}

// hostPort renders host (capped) and port as hostPortString does.
func (s *interner) hostPort(host []byte, port uint32) string {
	if v, ok := s.hostPorts[string(host)]; ok && v.port == port {
		return v.s
	}
	h := toString(host, maxShortField)
	v := hostPortString(h, port)
	if s.hostPorts == nil || len(s.hostPorts) >= internMax {
		s.hostPorts = make(map[string]hostPort, 64)
	}
	s.hostPorts[string(host)] = hostPort{port, v}
	return v
}
