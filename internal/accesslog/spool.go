package accesslog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The spool keeps batches ClickHouse did not take, one file per batch:
//
//	header  "SLAL" | version u8 | flags u8 | batch id [16] | rows u32 | payload length u32
//	payload rows (rowcodec.go)
//	trailer CRC-32C of header and payload, u32
//
// A file is written to NNN.tmp, fsync'd, renamed to NNN.batch and the
// directory fsync'd, so a crash leaves either a whole batch or a .tmp that
// the next open deletes. Files are replayed in sequence order and deleted
// only after ClickHouse acknowledged the insert.
//
// Every version keeps this framing (magic, version at byte 4, payload
// length at 26, CRC-32C trailer); only the flags and the payload may change.
// That lets a build tell a file written by a newer build, after a rollback,
// from a corrupt one: a sound frame with a version above spoolVersion is
// renamed NNN.newer and kept as it is, not dropped, and the first open by a
// build that knows the version renames it back to NNN.batch, so it is
// replayed in its place by seq. Set-aside files keep counting toward
// spool_max_bytes: they are on the same disk, and the bound is what keeps
// the spool from filling it (rows beyond it are dropped and counted).

const (
	spoolMagic = "SLAL"
	// spoolVersion 2 added the decision column, 3 rule, field, excerpt
	// and the two module scores, 4 the per-batch dictionary of
	// low-cardinality strings (rowEncoder); older files (written by an
	// older build) are still read.
	spoolVersion    = 4
	spoolHeaderLen  = 4 + 1 + 1 + 16 + 4 + 4
	spoolTrailerLen = 4
	spoolExt        = ".batch"
	// spoolNewerExt marks a file set aside for a newer build.
	spoolNewerExt = ".newer"

	// flagMaybeCommitted: an earlier insert of this batch failed after
	// the rows were sent, so some may already be in ClickHouse.
	flagMaybeCommitted = 1
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errSpoolFull means the batch would exceed spool_max_bytes.
var errSpoolFull = errors.New("spool full")

// CorruptionError reports a spool file that fails its checks. The file is
// moved aside (renamed *.corrupt) and its rows are counted as dropped.
type CorruptionError struct {
	File string
	Err  error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("accesslog spool: corrupt file %s: %v", e.File, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// NewerVersionError reports a sound spool file written by a newer build in
// a format this one does not know. It is kept (renamed *.newer) for a build
// that does, not counted as dropped.
type NewerVersionError struct {
	File    string
	Version byte
}

func (e *NewerVersionError) Error() string {
	return fmt.Sprintf("accesslog spool: %s has format version %d, this build reads up to %d",
		e.File, e.Version, spoolVersion)
}

// encodeBatch renders a batch in the spool file format.
func encodeBatch(b *batch) []byte {
	buf := make([]byte, spoolHeaderLen, spoolHeaderLen+len(b.data)+spoolTrailerLen)
	copy(buf, spoolMagic)
	buf[4] = spoolVersion
	if b.maybeCommitted {
		buf[5] = flagMaybeCommitted
	}
	copy(buf[6:22], b.id[:])
	binary.LittleEndian.PutUint32(buf[22:26], uint32(b.n))
	buf = append(buf, b.data...)
	binary.LittleEndian.PutUint32(buf[26:30], uint32(len(buf)-spoolHeaderLen))
	return binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, crcTable))
}

// decodeBatch parses one spool file's bytes, checking length and CRC first.
func decodeBatch(data []byte) (*batch, error) {
	if len(data) < spoolHeaderLen+spoolTrailerLen {
		return nil, fmt.Errorf("%d bytes is shorter than a header", len(data))
	}
	if string(data[:4]) != spoolMagic {
		return nil, errors.New("bad magic")
	}
	if data[4] < 1 {
		return nil, fmt.Errorf("unknown version %d", data[4])
	}
	n := binary.LittleEndian.Uint32(data[22:26])
	plen := binary.LittleEndian.Uint32(data[26:30])
	if uint64(plen) != uint64(len(data)-spoolHeaderLen-spoolTrailerLen) {
		return nil, fmt.Errorf("payload length %d does not match file size %d", plen, len(data))
	}
	body := data[:len(data)-spoolTrailerLen]
	if want, got := binary.LittleEndian.Uint32(data[len(body):]), crc32.Checksum(body, crcTable); want != got {
		return nil, fmt.Errorf("crc %08x, want %08x", got, want)
	}
	// Checked after the frame: the CRC covers the version byte, so a
	// damaged file is not mistaken for a newer one.
	if data[4] > spoolVersion {
		return nil, &NewerVersionError{Version: data[4]}
	}
	// Every row takes at least one byte per field: bound n before allocating.
	payload := body[spoolHeaderLen:]
	if uint64(n) > uint64(len(payload)) {
		return nil, fmt.Errorf("%d rows cannot fit in %d bytes", n, len(payload))
	}
	// Every row is decoded once to check it; a file of an older version is
	// encoded again in the current one, the form batches travel in.
	var old []Row
	d := newRowDecoder(payload, data[4])
	var r Row
	for i := range int(n) {
		if err := d.row(&r); err != nil {
			return nil, fmt.Errorf("row %d: %w", i, err)
		}
		if data[4] != spoolVersion {
			old = append(old, r)
		}
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes after %d rows", len(d.b), n)
	}
	b := &batch{n: int(n), data: payload}
	if data[4] != spoolVersion {
		b = batchOf(old)
	}
	b.maybeCommitted = data[5]&flagMaybeCommitted != 0
	copy(b.id[:], data[6:22])
	return b, nil
}

// spoolFile is one batch file on disk.
type spoolFile struct {
	seq  uint64
	size int64
}

// spool is the on-disk overflow. It is safe for concurrent use; writes are
// serialized, which also keeps sequence numbers in completion order.
type spool struct {
	dir string
	max int64
	// changed is called with the new totals after every change.
	changed func(files, newer int, bytes int64)

	mu    sync.Mutex
	files []spoolFile // ascending seq
	newer int         // files set aside for a newer build
	bytes int64       // of files and of the ones set aside
	next  uint64
}

// openSpool creates dir if needed, removes half-written .tmp files, takes
// back the files set aside for a newer build whose version this one reads,
// and indexes the batches a previous run left behind.
func openSpool(dir string, max int64, changed func(files, newer int, bytes int64)) (*spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("accesslog spool: create %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("accesslog spool: read %s: %w", dir, err)
	}
	s := &spool{dir: dir, max: max, changed: changed, next: 1}
	var newer []spoolFile
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		if ext == ".tmp" {
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		if ext != spoolExt && ext != spoolNewerExt {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, ext), 10, 64)
		if err != nil {
			continue // not ours
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("accesslog spool: stat %s: %w", name, err)
		}
		f := spoolFile{seq: seq, size: info.Size()}
		if ext == spoolNewerExt {
			newer = append(newer, f)
		} else {
			s.files = append(s.files, f)
		}
		s.bytes += f.size
		// Past the set-aside files too: a newer build takes them back
		// under their own seq, which must not be reused meanwhile.
		s.next = max64(s.next, seq+1)
	}
	if err := s.takeBack(newer); err != nil {
		return nil, err
	}
	slices.SortFunc(s.files, func(a, b spoolFile) int { return cmpU64(a.seq, b.seq) })
	s.notify()
	return s, nil
}

// takeBack renames the set-aside files this build can read back to .batch;
// the rest stay set aside and are counted in s.newer.
func (s *spool) takeBack(newer []spoolFile) error {
	taken := false
	for _, f := range newer {
		p := s.newerPath(f.seq)
		ok, err := readableVersion(p)
		if err != nil {
			return err
		}
		// A .batch of the same seq cannot come from this spool; never
		// overwrite it.
		if _, serr := os.Lstat(s.path(f.seq)); ok && errors.Is(serr, fs.ErrNotExist) {
			if err := os.Rename(p, s.path(f.seq)); err != nil {
				return fmt.Errorf("accesslog spool: take back %s: %w", filepath.Base(p), err)
			}
			s.files = append(s.files, f)
			taken = true
			continue
		}
		s.newer++
	}
	if taken {
		return syncDir(s.dir)
	}
	return nil
}

// readableVersion reports whether the file at p has the spool magic and a
// version this build reads. Only the header is looked at: the full checks
// run when the batch is replayed.
func readableVersion(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("accesslog spool: open %s: %w", filepath.Base(p), err)
	}
	defer f.Close()
	var h [5]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return false, nil // too short to be taken back: it stays set aside
	}
	return string(h[:4]) == spoolMagic && h[4] >= 1 && h[4] <= spoolVersion, nil
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *spool) notify() {
	if s.changed != nil {
		s.changed(len(s.files), s.newer, s.bytes)
	}
}

func (s *spool) path(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, spoolExt))
}

func (s *spool) newerPath(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, spoolNewerExt))
}

// put writes b durably, or returns errSpoolFull when it would exceed the cap.
func (s *spool) put(b *batch) error {
	data := encodeBatch(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bytes+int64(len(data)) > s.max {
		return errSpoolFull
	}
	seq := s.next
	if err := s.writeFile(s.path(seq), data); err != nil {
		return err
	}
	s.next++
	s.files = append(s.files, spoolFile{seq: seq, size: int64(len(data))})
	s.bytes += int64(len(data))
	s.notify()
	return nil
}

// writeFile writes data to path atomically and durably.
func (s *spool) writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("accesslog spool: create: %w", err)
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("accesslog spool: write %s: %w", filepath.Base(path), werr)
	}
	return syncDir(s.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("accesslog spool: open dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("accesslog spool: sync dir: %w", err)
	}
	return nil
}

// oldest returns the first batch file in sequence order.
func (s *spool) oldest() (spoolFile, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.files) == 0 {
		return spoolFile{}, false
	}
	return s.files[0], true
}

// stats returns the current totals.
func (s *spool) stats() (files int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.files), s.bytes
}

// newerFiles returns how many files are set aside for a newer build.
func (s *spool) newerFiles() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newer
}

// read loads a batch file; a *CorruptionError means it cannot be used, a
// *NewerVersionError that it is for a newer build (see setAside).
func (s *spool) read(f spoolFile) (*batch, error) {
	data, err := os.ReadFile(s.path(f.seq))
	if err != nil {
		return nil, fmt.Errorf("accesslog spool: read: %w", err)
	}
	b, err := decodeBatch(data)
	if nv, ok := errors.AsType[*NewerVersionError](err); ok {
		nv.File = s.path(f.seq)
		return nil, nv
	}
	if err != nil {
		return nil, &CorruptionError{File: s.path(f.seq), Err: err}
	}
	return b, nil
}

// rewrite replaces f's content with b (to persist maybeCommitted).
func (s *spool) rewrite(f spoolFile, b *batch) error {
	data := encodeBatch(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writeFile(s.path(f.seq), data); err != nil {
		return err
	}
	for i := range s.files {
		if s.files[i].seq == f.seq {
			s.bytes += int64(len(data)) - s.files[i].size
			s.files[i].size = int64(len(data))
		}
	}
	s.notify()
	return nil
}

// remove deletes f after its rows are safely in ClickHouse.
func (s *spool) remove(f spoolFile) error {
	return s.drop(f, func(p string) error { return os.Remove(p) })
}

// quarantine moves a corrupt f aside so replay can go on.
func (s *spool) quarantine(f spoolFile) error {
	return s.drop(f, func(p string) error { return os.Rename(p, strings.TrimSuffix(p, spoolExt)+".corrupt") })
}

// setAside renames f, written by a newer build, to NNN.newer and leaves
// replay: its bytes stay counted toward the bound (see the file comment).
func (s *spool) setAside(f spoolFile) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Rename(s.path(f.seq), s.newerPath(f.seq)); err != nil {
		return fmt.Errorf("accesslog spool: set aside %d: %w", f.seq, err)
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	if i := slices.IndexFunc(s.files, func(g spoolFile) bool { return g.seq == f.seq }); i >= 0 {
		s.files = slices.Delete(s.files, i, i+1)
		s.newer++
	}
	s.notify()
	return nil
}

func (s *spool) drop(f spoolFile, op func(string) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := op(s.path(f.seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("accesslog spool: remove %d: %w", f.seq, err)
	}
	for i := range s.files {
		if s.files[i].seq == f.seq {
			s.bytes -= s.files[i].size
			s.files = slices.Delete(s.files, i, i+1)
			break
		}
	}
	s.notify()
	return nil
}
