package payload

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
)

// Multipart bodies (multipart/form-data uploads, multipart/mixed): every
// part's field name, its value, the file name as the client sent it (not
// filepath.Base'd: "../../x.php" is the point), and a file's content when
// it is text by its declared type or by its bytes, each part capped at
// payload.max_part_bytes. Binary files are skipped. Locations:
// "body-key:<field>" for the name, "body:<field>" for a value (as for
// urlencoded forms), "body-filename:<field>" for the file name.

const (
	locBodyFilename = "body-filename"
	// maxParts bounds the parts read of one request, nesting included.
	maxParts = 1000
	// maxMultipartDepth bounds multipart/mixed inside multipart/form-data.
	maxMultipartDepth = 2
)

func (s *scan) multipart(boundary string, b []byte, depth int, res *Result) {
	if boundary == "" || depth >= maxMultipartDepth {
		// No boundary: no framework splits it either; inspect it whole.
		s.field(locBody, "", nil, string(b), false)
		return
	}
	r := multipart.NewReader(bytes.NewReader(b), boundary)
	seen := 0
	for s.ch.parts < maxParts {
		p, err := r.NextPart()
		if err == io.EOF {
			return
		}
		if err != nil {
			s.multipartRest(b, boundary, seen)
			return
		}
		s.ch.parts++
		seen++
		s.part(p, depth, res)
	}
}

// part inspects one part.
func (s *scan) part(p *multipart.Part, depth int, res *Result) {
	name, filename, hasFile := dispositionNames(p.Header.Get("Content-Disposition"))
	if name != "" {
		name = s.field(locBodyKey, name, nil, name, false)
	}
	if hasFile {
		s.field(locBodyFilename, name, nil, filename, false)
	}
	limit := s.cfg.MaxPartBytes
	data, err := io.ReadAll(io.LimitReader(p, int64(limit)))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && len(data) == 0 {
		return
	}
	if len(data) == 0 {
		return
	}
	ct := p.Header.Get("Content-Type")
	if ct == "" {
		if hasFile {
			ct = http.DetectContentType(data)
		} else {
			ct = "text/plain" // a form field
		}
	}
	s.content(ct, data, name, depth+1, res)
}

// dispositionNames reads the field name and the raw file name of a
// Content-Disposition header (filename* wins, as RFC 7578 and browsers
// have it).
func dispositionNames(cd string) (name, filename string, hasFile bool) {
	_, params, err := mime.ParseMediaType(cd)
	if err != nil {
		// Malformed: take what can be read.
		for _, p := range strings.Split(cd, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok {
				continue
			}
			v = strings.Trim(v, `"`)
			switch strings.ToLower(k) {
			case "name":
				name = v
			case "filename", "filename*":
				filename, hasFile = v, true
			}
		}
		return name, filename, hasFile
	}
	filename, hasFile = params["filename"]
	return params["name"], filename, hasFile
}

// multipartRest inspects, as raw text, what follows the last part the
// reader could parse: a malformed or truncated multipart body never hides
// its tail.
func (s *scan) multipartRest(b []byte, boundary string, parsed int) {
	delim := []byte("--" + boundary)
	rest := b
	for i := 0; i <= parsed; i++ {
		j := bytes.Index(rest, delim)
		if j < 0 {
			if i == 0 {
				s.field(locBody, "", nil, string(b), false) // no delimiter at all
			}
			return
		}
		rest = rest[j+len(delim):]
	}
	// Skip the part's headers when they are complete.
	if k := bytes.Index(rest, []byte("\r\n\r\n")); k >= 0 {
		rest = rest[k+4:]
	} else if k := bytes.Index(rest, []byte("\n\n")); k >= 0 {
		rest = rest[k+2:]
	}
	if t := strings.TrimSpace(string(rest)); t != "" {
		s.field(locBody, "", nil, t, false)
	}
}
