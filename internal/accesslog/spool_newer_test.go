package accesslog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

// withVersion returns a copy of the spool file data with its version byte
// set to v and the CRC made right again: what a build writing format v
// would leave, as far as the frame goes.
func withVersion(data []byte, v byte) []byte {
	out := append([]byte(nil), data...)
	out[4] = v
	body := out[:len(out)-spoolTrailerLen]
	binary.LittleEndian.PutUint32(out[len(body):], crc32.Checksum(body, crcTable))
	return out
}

func spoolName(seq uint64, ext string) string { return fmt.Sprintf("%020d%s", seq, ext) }

// writeSpoolFile writes data as dir/NNN<ext>.
func writeSpoolFile(t *testing.T, dir string, seq uint64, ext string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, spoolName(seq, ext)), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeBatchNewerVersion(t *testing.T) {
	valid := encodeBatch(batchOf([]Row{{Unix: 1_764_000_000, RequestID: "r1", Path: "/a"}}))
	badCRC := withVersion(valid, spoolVersion+1)
	badCRC[len(badCRC)-1] ^= 0xff
	short := withVersion(valid, spoolVersion+1)
	binary.LittleEndian.PutUint32(short[26:30], 1)
	for _, tc := range []struct {
		name             string
		data             []byte
		newer, corrupted bool
	}{
		{"current version", valid, false, false},
		{"next version, sound frame", withVersion(valid, spoolVersion+1), true, false},
		{"last version, sound frame", withVersion(valid, 255), true, false},
		{"next version, bad crc", badCRC, false, true},
		{"next version, bad length", short, false, true},
		{"version 0", withVersion(valid, 0), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeBatch(tc.data)
			var nv *NewerVersionError
			if got := errors.As(err, &nv); got != tc.newer {
				t.Fatalf("newer version error %v, want %v (err %v)", got, tc.newer, err)
			}
			if tc.newer && nv.Version != tc.data[4] {
				t.Errorf("version %d, want %d", nv.Version, tc.data[4])
			}
			if got := err != nil && !tc.newer; got != tc.corrupted {
				t.Errorf("rejected as corrupt %v, want %v (err %v)", got, tc.corrupted, err)
			}
		})
	}
}

// TestSpoolOpenTakesBackNewer: at open, a set-aside file this build reads
// rejoins the spool in its seq order; one it does not read stays aside,
// counted, and its seq is not reused.
func TestSpoolOpenTakesBackNewer(t *testing.T) {
	dir := t.TempDir()
	enc := func(id string) []byte { return encodeBatch(batchOf([]Row{{Unix: 1, RequestID: id}})) }
	newer := withVersion(enc("n5"), spoolVersion+1)
	writeSpoolFile(t, dir, 1, spoolExt, enc("b1"))
	writeSpoolFile(t, dir, 2, spoolNewerExt, enc("b2"))
	writeSpoolFile(t, dir, 3, spoolExt, enc("b3"))
	writeSpoolFile(t, dir, 5, spoolNewerExt, newer)
	var gotFiles, gotNewer int
	var gotBytes int64
	sp, err := openSpool(dir, 1<<20, func(files, n int, b int64) { gotFiles, gotNewer, gotBytes = files, n, b })
	if err != nil {
		t.Fatal(err)
	}
	if gotFiles != 3 || gotNewer != 1 {
		t.Errorf("files %d newer %d, want 3 and 1", gotFiles, gotNewer)
	}
	var want int64
	for _, d := range [][]byte{enc("b1"), enc("b2"), enc("b3"), newer} {
		want += int64(len(d))
	}
	if gotBytes != want {
		t.Errorf("bytes %d, want %d: set-aside files count toward the bound", gotBytes, want)
	}
	if _, err := os.Stat(filepath.Join(dir, spoolName(2, spoolNewerExt))); !os.IsNotExist(err) {
		t.Errorf("readable .newer file left aside: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, spoolName(5, spoolNewerExt))); err != nil || !bytes.Equal(got, newer) {
		t.Errorf("unreadable .newer file not kept intact: %v", err)
	}
	for _, id := range []string{"b1", "b2", "b3"} {
		f, ok := sp.oldest()
		if !ok {
			t.Fatalf("spool empty before %s", id)
		}
		b, err := sp.read(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := batchRows(t, b)[0].RequestID; got != id {
			t.Fatalf("batch seq %d is %q, want %q", f.seq, got, id)
		}
		if err := sp.remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.put(batchOf([]Row{{Unix: 1, RequestID: "b6"}})); err != nil {
		t.Fatal(err)
	}
	if f, _ := sp.oldest(); f.seq != 6 {
		t.Errorf("new batch got seq %d, want 6 (past the set-aside 5)", f.seq)
	}
}

// TestReplaySetsAsideNewerVersion: after a rollback, files a newer build
// spooled in a format this one does not know are kept byte for byte and
// not counted dropped, replay goes on with the others; a build that knows
// the format (simulated: a current-version file set aside by name) takes
// its file back at start and replays it once.
func TestReplaySetsAsideNewerVersion(t *testing.T) {
	testenv.ForEachClickHouse(t, testReplaySetsAsideNewerVersion)
}

func testReplaySetsAsideNewerVersion(t *testing.T, conn driver.Conn) {
	db := schemaDB(t, conn)
	ctx := testCtx(t)
	dir := t.TempDir()
	batches := make([][]byte, 5) // by seq, 1..4
	for seq := 1; seq <= 4; seq++ {
		var rows []Row
		for i := range 100 {
			rows = append(rows, Row{Unix: 1_764_000_000, RequestID: fmt.Sprintf("s%d-%d", seq, i), Path: "/x"})
		}
		b := batchOf(rows)
		b.id = [16]byte{byte(seq)}
		batches[seq] = encodeBatch(b)
	}
	newer2, newer4 := withVersion(batches[2], spoolVersion+1), withVersion(batches[4], spoolVersion+1)
	writeSpoolFile(t, dir, 1, spoolExt, batches[1])
	writeSpoolFile(t, dir, 2, spoolExt, newer2)
	writeSpoolFile(t, dir, 3, spoolExt, batches[3])
	writeSpoolFile(t, dir, 4, spoolExt, newer4)

	cfg := testConfig(t)
	cfg.ClickHouse.Database, cfg.SpoolDir = db, dir
	s, wait := runCHService(t, cfg, conn, nil)
	eventually(t, 20*time.Second, "spool replayed", func() bool { f, _ := s.sp.stats(); return f == 0 })
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wait()
	if total, distinct := countRows(t, conn, db); total != 200 || distinct != 200 {
		t.Errorf("count %d distinct %d, want 200 (seq 1 and 3)", total, distinct)
	}
	for _, reason := range []string{dropDisabled, dropSpoolFull, dropSpoolError, dropCorrupt, dropClosed} {
		if got := testutil.ToFloat64(s.m.dropped.WithLabelValues(reason)); got != 0 {
			t.Errorf("dropped_rows_total{reason=%q} = %v, want 0", reason, got)
		}
	}
	if got := testutil.ToFloat64(s.m.spoolNewer); got != 2 {
		t.Errorf("spool_newer_files %v, want 2", got)
	}
	for seq, want := range map[uint64][]byte{2: newer2, 4: newer4} {
		got, err := os.ReadFile(filepath.Join(dir, spoolName(seq, spoolNewerExt)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("seq %d not kept byte for byte as .newer: %v", seq, err)
		}
	}

	// Roll forward: seq 2 is now in a format the build knows.
	writeSpoolFile(t, dir, 2, spoolNewerExt, batches[2])
	s, wait = runCHService(t, cfg, conn, nil)
	eventually(t, 20*time.Second, "taken-back file replayed", func() bool { f, _ := s.sp.stats(); return f == 0 })
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wait()
	if total, distinct := countRows(t, conn, db); total != 300 || distinct != 300 {
		t.Errorf("after roll-forward count %d distinct %d, want 300", total, distinct)
	}
	if got := testutil.ToFloat64(s.m.replayedBatches); got != 1 {
		t.Errorf("replayed %v batches, want 1", got)
	}
	if got := testutil.ToFloat64(s.m.spoolNewer); got != 1 {
		t.Errorf("spool_newer_files %v, want 1 (seq 4)", got)
	}
	if got, err := os.ReadFile(filepath.Join(dir, spoolName(4, spoolNewerExt))); err != nil || !bytes.Equal(got, newer4) {
		t.Errorf("seq 4 not kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, spoolName(2, spoolNewerExt))); !os.IsNotExist(err) {
		t.Errorf("seq 2 still set aside: %v", err)
	}
}
