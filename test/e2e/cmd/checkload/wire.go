package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawCodec sends pre-marshalled bytes and hands back the answer's bytes:
// the load generator spends no CPU on protobuf reflection.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot send %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot read into %T", v)
	}
	*p = data.Materialize()
	return nil
}

// statusCode reads CheckResponse.status.code (fields 1 and 1): 0 is OK.
func statusCode(b []byte) (int32, bool) {
	st, ok := field(b, 1)
	if !ok {
		return 0, true // no status: OK
	}
	for len(st) > 0 {
		num, typ, n := protowire.ConsumeTag(st)
		if n < 0 {
			return 0, false
		}
		st = st[n:]
		if num == 1 && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(st)
			return int32(v), m >= 0
		}
		m := protowire.ConsumeFieldValue(num, typ, st)
		if m < 0 {
			return 0, false
		}
		st = st[m:]
	}
	return 0, true
}

// field returns the bytes of the first length-delimited field num of b.
func field(b []byte, num protowire.Number) ([]byte, bool) {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return nil, false
		}
		b = b[l:]
		if n == num && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			return v, m >= 0
		}
		m := protowire.ConsumeFieldValue(n, typ, b)
		if m < 0 {
			return nil, false
		}
		b = b[m:]
	}
	return nil, false
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times (100 on
// every Linux architecture Go runs on).
const clockTicks = 100

// cpuTicks is the user+system CPU time of process pid so far (0 when pid
// is 0 or unreadable).
func cpuTicks(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

// failMode is the server's count of Checks answered by its fail mode
// (smartlayer_check_errors_total without budget_stage), 0 without a
// metrics URL.
func (t *target) failMode() (int64, error) {
	if t.metrics == "" {
		return 0, nil
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(t.metrics)
	if err != nil {
		return 0, fmt.Errorf("%s: metrics: %w", t.name, err)
	}
	defer resp.Body.Close()
	var n float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "smartlayer_check_errors_total{") || strings.Contains(line, `"budget_stage"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: metrics line %q: %w", t.name, line, err)
		}
		n += v
	}
	return int64(n), sc.Err()
}
