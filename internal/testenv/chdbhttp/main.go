// Command chdbhttp serves ClickHouse's HTTP interface from chDB, ClickHouse's
// engine as a library (libchdb.so, loaded by github.com/chdb-io/chdb-go), so
// that `make test` runs the product's SQL and DDL on a current ClickHouse
// (26.x) next to Debian's 18.16, without a server package for it.
//
// Tests reach it through clickhouse-go's own HTTP client
// (testenv.OpenModernClickHouse): the product code builds, binds and sends
// every statement, and scans every answer, exactly as against a server; only
// the transport differs from production's native protocol, which this cannot
// test. scripts/testenv.sh fetches the library, builds and starts this
// command once per run and exports its address as SMARTLAYER_TEST_CHDB_ADDR.
//
// It is a test tool, never linked by cmd/authz or cmd/reporter. It
// implements what clickhouse-go's HTTP transport uses: the statement in the
// body (or the query parameter, with Native data in the body for INSERT),
// settings and server-side query parameters (param_NAME) as URL parameters, the answer in Native format at the client's
// protocol revision, and an exception as an HTTP 500 with its code header.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
	chdb "github.com/chdb-io/chdb-go/chdb-purego"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8123", "loopback address to serve ClickHouse's HTTP interface on")
	path := flag.String("path", "", "chDB data directory (required; tables live on disk like a server's)")
	flag.Parse()
	if *path == "" {
		log.Fatal("chdbhttp: -path is required")
	}
	if err := run(*addr, *path); err != nil {
		log.Fatalf("chdbhttp: %v", err)
	}
}

func run(addr, path string) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	conn, err := chdb.NewConnectionFromConnString(path)
	if err != nil {
		return fmt.Errorf("open chDB at %s: %w", path, err)
	}
	defer conn.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: &server{conn: conn, tmp: path}, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}

// server runs one request at a time: chDB has one session per process, and
// per-request settings and the default database are session state.
type server struct {
	mu   sync.Mutex
	conn chdb.ChdbConn
	tmp  string // where INSERT data is staged for FROM INFILE
}

// URL parameters that are the request's framing, not settings.
var framing = map[string]bool{
	"query": true, "database": true, "default_format": true, "client_protocol_version": true,
	"query_id": true, "quota_key": true, "user": true, "password": true,
}

// settingRE is what may be spliced into SET: a setting name.
var settingRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// formatNativeRE is the tail clickhouse-go gives an INSERT whose data is in
// the body.
var formatNativeRE = regexp.MustCompile(`(?is)\s+FORMAT\s+Native\s*$`)

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ping" {
		_, _ = io.WriteString(w, "Ok.\n")
		return
	}
	params := r.URL.Query()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		httpError(w, fmt.Errorf("read body: %w", err))
		return
	}
	if params.Get("compress") == "1" || params.Get("decompress") == "1" || r.Header.Get("Content-Encoding") != "" {
		httpError(w, errors.New("chdbhttp: compression is not supported; open the connection without it"))
		return
	}
	rev, _ := strconv.ParseUint(params.Get("client_protocol_version"), 10, 64)
	query, data := params.Get("query"), []byte(nil)
	if query == "" {
		query = string(body)
	} else if len(body) > 0 {
		data = body
	}
	var settings []string
	for k, v := range params {
		if framing[k] || k == "compress" || k == "decompress" {
			continue
		}
		// A param_NAME is a server-side query parameter ({NAME:Type} in
		// the statement); the session takes it as SET param_NAME.
		if !settingRE.MatchString(k) || len(v) == 0 {
			httpError(w, fmt.Errorf("chdbhttp: bad setting %q", k))
			return
		}
		settings = append(settings, k+" = "+quote(v[0]))
	}
	out, err := s.exec(query, data, params.Get("database"), settings)
	if err != nil {
		httpError(w, err)
		return
	}
	if rev > 0 && len(out) > 0 {
		if out, err = reviseNative(out, rev); err != nil {
			httpError(w, err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
}

// exec runs one statement in the session with the request's settings and
// default database, and restores both afterwards.
func (s *server) exec(query string, data []byte, database string, settings []string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if data != nil {
		// The session API takes the statement as a C string, so INSERT data
		// (binary Native) goes through a file: FROM INFILE reads it.
		loc := formatNativeRE.FindStringIndex(query)
		if loc == nil {
			return nil, fmt.Errorf("chdbhttp: data in the body needs an INSERT ending in FORMAT Native, got %q", query)
		}
		f, err := os.CreateTemp(s.tmp, "insert-*.native")
		if err != nil {
			return nil, err
		}
		defer os.Remove(f.Name())
		_, werr := f.Write(data)
		if err := errors.Join(werr, f.Close()); err != nil {
			return nil, err
		}
		query = query[:loc[0]] + " FROM INFILE " + quote(filepath.Clean(f.Name())) + " FORMAT Native"
	}
	for _, st := range settings {
		if _, err := s.run("SET " + st); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, st := range settings {
			name, _, _ := strings.Cut(st, " ")
			if strings.HasPrefix(name, "param_") {
				continue // a parameter has no default; the next request sets its own
			}
			if _, err := s.run("SET " + name + " = DEFAULT"); err != nil {
				log.Printf("chdbhttp: reset %s: %v", name, err)
			}
		}
	}()
	if database != "" {
		if _, err := s.run("USE " + quoteIdent(database)); err != nil {
			return nil, err
		}
		defer func() {
			if _, err := s.run("USE default"); err != nil {
				log.Printf("chdbhttp: reset database: %v", err)
			}
		}()
	}
	return s.run(query)
}

func (s *server) run(query string) ([]byte, error) {
	res, err := s.conn.Query(query, "Native")
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, nil
	}
	defer res.Free()
	if err := res.Error(); err != nil {
		return nil, err
	}
	return bytes.Clone(res.Buf()), nil
}

// reviseNative re-frames chDB's Native output (protocol revision 0, as a file
// would hold it) for a client at protocol revision rev, as the server's HTTP
// handler does for client_protocol_version: each block gains its block info
// and each column its custom-serialization flag. Decoding and encoding go
// through clickhouse-go's own column types.
func reviseNative(out []byte, rev uint64) ([]byte, error) {
	sc := &column.ServerContext{Revision: rev, Timezone: time.UTC}
	rd := chproto.NewReader(bytes.NewReader(out))
	buf := new(chproto.Buffer)
	for {
		b := proto.Block{ServerContext: sc}
		if err := b.Decode(rd, 0); err != nil {
			if errors.Is(err, io.EOF) {
				return buf.Buf, nil
			}
			return nil, fmt.Errorf("chdbhttp: decode Native answer: %w", err)
		}
		if err := b.Encode(buf, rev); err != nil {
			return nil, fmt.Errorf("chdbhttp: encode Native answer: %w", err)
		}
	}
}

// codeRE reads the code of a ClickHouse exception text.
var codeRE = regexp.MustCompile(`^Code: (\d+)\.`)

// httpError answers like ClickHouse: status 500, the exception text as the
// body and its code in X-ClickHouse-Exception-Code.
func httpError(w http.ResponseWriter, err error) {
	msg := err.Error()
	code := "1001" // STD_EXCEPTION: an error of this front, not the engine's
	if m := codeRE.FindStringSubmatch(msg); m != nil {
		code = m[1]
	} else {
		msg = "Code: " + code + ". DB::Exception: " + msg
	}
	w.Header().Set("X-ClickHouse-Exception-Code", code)
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = io.WriteString(w, msg+"\n")
}

// quote renders s as a ClickHouse string literal.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
