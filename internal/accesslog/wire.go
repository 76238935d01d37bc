package accesslog

import (
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
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
	err      error // what decode said of the last message (RecvMsg wraps it)

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
// maxKeptRows bounds the row slice a stream keeps between messages: Envoy
// flushes every 16 KiB (some 50 entries), and one huge message must not pin
// its rows for the life of the stream.
const maxKeptRows = 1024

func (f *frame) decode(b []byte) error {
	if cap(f.rows) > maxKeptRows {
		f.rows, f.peers = nil, nil
	}
	f.rows, f.peers = f.rows[:0], f.peers[:0]
	f.tcp, f.invalid, f.intermediate = 0, 0, 0
	kind := logNone
	hasIdent := false
	var node []byte
	sc := scan(b)
	for sc.next() {
		switch fl := sc.f; {
		case fl.bytes(numMsgIdentifier):
			hasIdent = true
			sc.check(decodeIdentifier(fl.b, &node))
		case fl.bytes(numMsgHTTPLogs):
			if kind == logTCP {
				f.tcp = 0
			}
			kind = logHTTP
			sc.check(f.decodeHTTPLogs(fl.b))
		case fl.bytes(numMsgTCPLogs):
			if kind == logHTTP { // a later oneof member replaces the entries
				f.rows, f.peers = f.rows[:0], f.peers[:0]
				f.invalid, f.intermediate = 0, 0
			}
			kind = logTCP
			n, err := countEntries(fl.b)
			sc.check(err)
			f.tcp += n
		}
	}
	if sc.err != nil {
		return sc.err
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
	sc := scan(b)
	for sc.next() {
		if sc.f.bytes(numIdentNode) {
			inner := scan(sc.f.b)
			for inner.next() {
				if inner.f.bytes(numNodeID) {
					*node = inner.f.b
				}
			}
			sc.check(inner.err)
		}
	}
	return sc.err
}

func (f *frame) decodeHTTPLogs(b []byte) error {
	sc := scan(b)
	for sc.next() {
		if !sc.f.bytes(numLogEntry) {
			continue
		}
		e := wireEntry{userHeader: f.mp.userHeader, planHeader: f.mp.planHeader}
		if err := e.decode(sc.f.b); err != nil {
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
	return sc.err
}

func countEntries(b []byte) (int, error) {
	n := 0
	sc := scan(b)
	for sc.next() {
		if sc.f.bytes(numLogEntry) {
			n++
		}
	}
	return n, sc.err
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
	b    bool
}

func (v wireValue) stringValue() []byte {
	if v.kind == numValueString {
		return v.str
	}
	return nil
}

func (v wireValue) boolValue() bool {
	return v.kind == numValueBool && v.b
}

func (v wireValue) numberValue() float64 {
	if v.kind == numValueNumber {
		return v.num
	}
	return 0
}

// authzFields are the ext_authz dynamic metadata fields a row keeps.
type authzFields struct {
	decision, module, reason, score, shadow, user, plan wireValue
	rule, field, excerpt, behaviorScore, payloadScore   wireValue
}

func (e *wireEntry) decode(b []byte) error {
	sc := scan(b)
	for sc.next() {
		switch fl := sc.f; {
		case fl.bytes(numEntryCommon):
			e.hasCommon = true
			sc.check(e.decodeCommon(fl.b))
		case fl.bytes(numEntryRequest):
			e.hasRequest = true
			sc.check(e.decodeRequest(fl.b))
		case fl.bytes(numEntryResponse):
			e.hasResponse = true
			sc.check(e.decodeResponse(fl.b))
		}
	}
	return sc.err
}

func (e *wireEntry) decodeCommon(b []byte) error {
	sc := scan(b)
	for sc.next() {
		switch fl := sc.f; {
		case fl.varint(numCommonIntermediate):
			e.intermediate = fl.v != 0
		case fl.bytes(numCommonDownstreamRemote):
			sc.check(e.downstream.decode(fl.b))
		case fl.bytes(numCommonDownstreamDirectRemote):
			sc.check(e.direct.decode(fl.b))
		case fl.bytes(numCommonUpstreamRemote):
			sc.check(e.upst.decode(fl.b))
		case fl.bytes(numCommonStartTime):
			sc.check(e.start.decode(fl.b))
		case fl.bytes(numCommonTimeToLastDownstreamTx):
			sc.check(e.lastTx.decode(fl.b))
		case fl.bytes(numCommonDuration):
			sc.check(e.duration.decode(fl.b))
		case fl.bytes(numCommonUpstreamCluster):
			e.upstreamCluster = fl.b
		case fl.bytes(numCommonRouteName):
			e.route = fl.b
		case fl.bytes(numCommonResponseFlags):
			sc.check(e.decodeFlags(fl.b))
		case fl.bytes(numCommonMetadata):
			sc.check(e.decodeMetadata(fl.b))
		}
	}
	return sc.err
}

// decode reads a Timestamp or a Duration (same fields), merging.
func (t *wireTime) decode(b []byte) error {
	t.set = true
	sc := scan(b)
	for sc.next() {
		switch fl := sc.f; {
		case fl.varint(numTimeSeconds):
			t.sec = int64(fl.v)
		case fl.varint(numTimeNanos):
			t.nanos = int32(fl.v)
		}
	}
	return sc.err
}

func (a *wireAddr) decode(b []byte) error {
	sc := scan(b)
	for sc.next() {
		switch fl := sc.f; {
		case fl.bytes(numAddrSocket):
			if a.kind != numAddrSocket { // a new oneof member starts empty
				*a = wireAddr{kind: numAddrSocket}
			}
			sc.check(a.decodeSocket(fl.b))
		case fl.bytes(numAddrPipe), fl.bytes(numAddrInternal):
			*a = wireAddr{kind: uint8(fl.num)}
		}
	}
	return sc.err
}

func (a *wireAddr) decodeSocket(b []byte) error {
	sc := scan(b)
	for sc.next() {
		switch fl := sc.f; {
		case fl.bytes(numSockAddress):
			a.host = fl.b
		case fl.varint(numSockPortValue):
			a.portKind, a.port = numSockPortValue, uint32(fl.v)
		case fl.bytes(numSockNamedPort):
			a.portKind, a.port = numSockNamedPort, 0
		}
	}
	return sc.err
}

func (e *wireEntry) decodeFlags(b []byte) error {
	sc := scan(b)
	for sc.next() {
		switch fl := sc.f; {
		case fl.bytes(numFlagsUnauthorized):
			e.uaex = true
		case fl.typ == protowire.VarintType && fl.num < protowire.Number(len(flagNames)) && flagNames[fl.num] != "":
			if fl.v != 0 {
				e.flags |= 1 << fl.num
			} else {
				e.flags &^= 1 << fl.num
			}
		}
	}
	return sc.err
}

// decodeMetadata reads filter_metadata, keeping the ext_authz namespace.
func (e *wireEntry) decodeMetadata(b []byte) error {
	sc := scan(b)
	for sc.next() {
		if !sc.f.bytes(numMetaFilter) {
			continue
		}
		var st authzFields
		key, err := mapEntry(sc.f.b, st.decodeStruct)
		sc.check(err)
		if string(key) == extAuthzNamespace {
			e.authz = st // a repeated key replaces the earlier value
		}
	}
	return sc.err
}

func (st *authzFields) decodeStruct(b []byte) error {
	sc := scan(b)
	for sc.next() {
		if !sc.f.bytes(numStructFields) {
			continue
		}
		var v wireValue
		key, err := mapEntry(sc.f.b, v.decode)
		sc.check(err)
		switch string(key) {
		case "decision":
			st.decision = v
		case "module":
			st.module = v
		case "reason":
			st.reason = v
		case "score":
			st.score = v
		case "shadow":
			st.shadow = v
		case "rule":
			st.rule = v
		case "field":
			st.field = v
		case "excerpt":
			st.excerpt = v
		case "behavior_score":
			st.behaviorScore = v
		case "payload_score":
			st.payloadScore = v
		case "user":
			st.user = v
		case "plan":
			st.plan = v
		}
	}
	return sc.err
}

func (v *wireValue) decode(b []byte) error {
	sc := scan(b)
	for sc.next() {
		switch fl := sc.f; {
		case fl.is(numValueNumber, protowire.Fixed64Type):
			v.kind, v.num = numValueNumber, math.Float64frombits(fl.v)
		case fl.bytes(numValueString):
			v.kind, v.str = numValueString, fl.b
		case fl.varint(numValueBool):
			v.kind, v.b = numValueBool, fl.v != 0
		case fl.varint(numValueNull), fl.bytes(numValueStruct), fl.bytes(numValueList):
			v.kind = uint8(fl.num)
		}
	}
	return sc.err
}

func (e *wireEntry) decodeRequest(b []byte) error {
	sc := scan(b)
	for sc.next() {
		switch fl := sc.f; {
		case fl.varint(numReqMethod):
			e.method = int32(fl.v)
		case fl.varint(numReqHeadersBytes):
			e.reqHeaderBytes = fl.v
		case fl.varint(numReqBodyBytes):
			e.reqBodyBytes = fl.v
		case fl.bytes(numReqScheme):
			e.scheme = fl.b
		case fl.bytes(numReqAuthority):
			e.authority = fl.b
		case fl.bytes(numReqPath):
			e.path = fl.b
		case fl.bytes(numReqUserAgent):
			e.userAgent = fl.b
		case fl.bytes(numReqReferer):
			e.referer = fl.b
		case fl.bytes(numReqRequestID):
			e.requestID = fl.b
		case fl.bytes(numReqHeaders):
			var val []byte
			key, err := mapEntry(fl.b, func(v []byte) error { val = v; return nil })
			sc.check(err)
			// A repeated header key replaces the earlier value.
			if string(key) == e.userHeader {
				e.user = val
			}
			if string(key) == e.planHeader {
				e.plan = val
			}
		}
	}
	return sc.err
}

func (e *wireEntry) decodeResponse(b []byte) error {
	sc := scan(b)
	for sc.next() {
		switch fl := sc.f; {
		case fl.bytes(numRespCode):
			code := scan(fl.b) // a UInt32Value; repeats merge
			for code.next() {
				if code.f.varint(numWrapperValue) {
					e.status = uint32(code.f.v)
				}
			}
			sc.check(code.err)
		case fl.varint(numRespHeadersBytes):
			e.respHeaderBytes = fl.v
		case fl.varint(numRespBodyBytes):
			e.respBodyBytes = fl.v
		}
	}
	return sc.err
}

// mapEntry reads one map entry and returns its key. Key and value may come
// in any order, repeat or be missing (the last key wins); value gets each
// value field, so a message value starts empty and its repeats merge.
func mapEntry(b []byte, value func([]byte) error) ([]byte, error) {
	var key []byte
	sc := scan(b)
	for sc.next() {
		switch fl := sc.f; {
		case fl.bytes(numMapEntryKey):
			key = fl.b
		case fl.bytes(numMapEntryValue):
			sc.check(value(fl.b))
		}
	}
	return key, sc.err
}

// wireField is one decoded field: v holds varint and fixed values, b the
// bytes of a length-delimited one.
type wireField struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

func (f *wireField) is(num protowire.Number, typ protowire.Type) bool {
	return f.num == num && f.typ == typ
}

// bytes and varint say whether f is field num with that wire type; with
// another wire type proto3 treats it as an unknown field.
func (f *wireField) bytes(num protowire.Number) bool  { return f.is(num, protowire.BytesType) }
func (f *wireField) varint(num protowire.Number) bool { return f.is(num, protowire.VarintType) }

// fieldScanner walks the fields of one message the way bufio.Scanner walks
// lines: for sc.next() { use sc.f }, then sc.err. Malformed input
// (truncation, a bad tag, an unmatched group) stops it with an error, as it
// fails proto.Unmarshal; check stops it with a nested message's error.
type fieldScanner struct {
	b   []byte
	f   wireField
	err error
}

func scan(b []byte) fieldScanner { return fieldScanner{b: b} }

func (s *fieldScanner) next() bool {
	if len(s.b) == 0 || s.err != nil {
		return false
	}
	num, typ, n := protowire.ConsumeTag(s.b)
	if n < 0 {
		s.err = protowire.ParseError(n)
		return false
	}
	s.f = wireField{num: num, typ: typ}
	rest := s.b[n:]
	var m int
	switch typ {
	case protowire.VarintType:
		s.f.v, m = protowire.ConsumeVarint(rest)
	case protowire.Fixed64Type:
		s.f.v, m = protowire.ConsumeFixed64(rest)
	case protowire.BytesType:
		s.f.b, m = protowire.ConsumeBytes(rest)
	default:
		m = protowire.ConsumeFieldValue(num, typ, rest)
	}
	if m < 0 {
		s.err = protowire.ParseError(m)
		return false
	}
	s.b = rest[m:]
	return true
}

func (s *fieldScanner) check(err error) {
	if s.err == nil {
		s.err = err
	}
}
