package payload

import (
	"bytes"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
)

// Declared charsets. A body is inspected as the application will read it:
// frameworks decode a body whose content-type says charset=utf-7,
// utf-16 or cp037 (EBCDIC) before parsing it, so an attack spelt in one of
// them is invisible to byte matching. decodeCharset turns the body into
// UTF-8 first; a charset nobody here can decode denies the request
// (payload.undecodable_charset) instead of letting its bytes through
// uninspected.

// charsetKind sorts the encodings by how their bytes relate to ASCII.
type charsetKind uint8

const (
	csUTF8  charsetKind = iota // UTF-8, ASCII, or no charset: the bytes as they are
	csASCII                    // another ASCII-compatible charset (latin1, cp1252, shift_jis…)
	csWide                     // UTF-16/32, EBCDIC: not one ASCII byte means what it says
	csUTF7                     // UTF-7: ASCII bytes, '+' starts base64-coded UTF-16
	csBad                      // unknown or unsupported: undecodable
)

// charset is a resolved charset parameter.
type charset struct {
	kind charsetKind
	enc  encoding.Encoding // csASCII, csWide
	name string
}

// lookupCharset resolves a charset parameter by the names frameworks
// honour: the IANA registry (with its aliases: cp037, ibm037,
// ebcdic-cp-us…), then the WHATWG labels browsers send (cp1252,
// x-user-defined…), plus UTF-7 and UTF-32, which neither index decodes.
func lookupCharset(name string) charset {
	n := strings.ToLower(strings.Trim(strings.TrimSpace(name), `"'`))
	switch n {
	case "", "utf-8", "utf8", "us-ascii", "ascii", "unicode-1-1-utf-8":
		return charset{kind: csUTF8, name: n}
	case "utf-7", "utf7", "unicode-1-1-utf-7", "csunicode11utf7", "x-unicode-2-0-utf-7", "x-unicode20utf7":
		return charset{kind: csUTF7, name: n}
	case "utf-32", "ucs-4", "iso-10646-ucs-4", "csucs4":
		return charset{kind: csWide, enc: utf32.UTF32(utf32.BigEndian, utf32.UseBOM), name: n}
	case "utf-32be":
		return charset{kind: csWide, enc: utf32.UTF32(utf32.BigEndian, utf32.IgnoreBOM), name: n}
	case "utf-32le":
		return charset{kind: csWide, enc: utf32.UTF32(utf32.LittleEndian, utf32.IgnoreBOM), name: n}
	case "utf-16", "ucs-2", "iso-10646-ucs-2", "csunicode", "unicode":
		// The byte order is the BOM's, else guessed (Java reads big-endian,
		// .NET little-endian: the guess follows the bytes).
		return charset{kind: csWide, name: "utf-16"}
	}
	enc, err := ianaindex.IANA.Encoding(n)
	if err != nil || enc == nil {
		enc, err = htmlindex.Get(n)
	}
	if err != nil || enc == nil || enc == encoding.Replacement {
		return charset{kind: csBad, name: n}
	}
	if asciiCompatible(enc) {
		return charset{kind: csASCII, enc: enc, name: n}
	}
	return charset{kind: csWide, enc: enc, name: n}
}

// asciiProbe holds the bytes whose meaning the parsers depend on.
const asciiProbe = "{}[]\"':,=&;<>/\\-+%# \r\n\tAZaz09"

func asciiCompatible(enc encoding.Encoding) bool {
	out, err := enc.NewDecoder().String(asciiProbe)
	return err == nil && out == asciiProbe
}

// decode returns b as UTF-8. Invalid sequences become U+FFFD, as the
// decoders frameworks use make them.
func (c charset) decode(b []byte) string {
	switch c.kind {
	case csUTF7:
		return decodeUTF7(b)
	case csASCII, csWide:
		if c.enc == nil { // utf-16 without a fixed byte order
			return decodeUTF16(b)
		}
		out, err := c.enc.NewDecoder().Bytes(b)
		if err != nil {
			return string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
		}
		return string(out)
	}
	return string(stripUTF8BOM(b))
}

// sniffBOM reads the byte order mark of a body that declares no charset:
// JSON parsers (RFC 8259's predecessors, Jackson) and XML parsers honour
// UTF-16 and UTF-32 marks.
func sniffBOM(b []byte) charset {
	switch {
	case bytes.HasPrefix(b, []byte{0, 0, 0xFE, 0xFF}), bytes.HasPrefix(b, []byte{0xFF, 0xFE, 0, 0}):
		return charset{kind: csWide, enc: utf32.UTF32(utf32.BigEndian, utf32.UseBOM), name: "utf-32"}
	case bytes.HasPrefix(b, []byte{0xFE, 0xFF}), bytes.HasPrefix(b, []byte{0xFF, 0xFE}):
		return charset{kind: csWide, name: "utf-16"}
	}
	return charset{kind: csUTF8}
}

// decodeUTF16 honours a BOM and otherwise picks the byte order whose
// high bytes are mostly zero (ASCII-range text).
func decodeUTF16(b []byte) string {
	var e unicode.Endianness = unicode.BigEndian
	switch {
	case bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}):
		e = unicode.LittleEndian
	default:
		even, odd := 0, 0
		for i := 0; i+1 < len(b) && i < 512; i += 2 {
			if b[i] == 0 {
				even++
			}
			if b[i+1] == 0 {
				odd++
			}
		}
		if odd > even {
			e = unicode.LittleEndian
		}
	}
	out, err := unicode.UTF16(e, unicode.ExpectBOM).NewDecoder().Bytes(b)
	if err != nil {
		out, _ = unicode.UTF16(e, unicode.IgnoreBOM).NewDecoder().Bytes(b)
	}
	return string(out)
}

func stripUTF8BOM(b []byte) []byte { return bytes.TrimPrefix(b, []byte{0xEF, 0xBB, 0xBF}) }

// charsetReader serves encoding/xml's prolog (<?xml encoding="…"?>): the
// same names, the same decoders. An unknown one fails the parse; the
// caller then inspects the raw text.
func charsetReader(label string, r io.Reader) (io.Reader, error) {
	c := lookupCharset(label)
	if c.kind == csBad {
		return nil, errUndecodable
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return strings.NewReader(c.decode(b)), nil
}

type charsetError struct{}

func (charsetError) Error() string { return "undecodable charset" }

var errUndecodable error = charsetError{}

// decodeUTF7 decodes RFC 2152 UTF-7 leniently: a '+' opens base64-coded
// UTF-16 (modified base64, no padding) that runs to the first character
// outside the alphabet, a '-' closing it is dropped, "+-" is '+'. Bits
// that do not fill a code unit are dropped; lone surrogates and other
// malformed input become U+FFFD. Every other byte is copied (bytes above
// 0x7F, which UTF-7 forbids, are kept as U+FFFD). It never fails and is
// linear in len(b).
func decodeUTF7(b []byte) string {
	out := make([]byte, 0, len(b))
	var units []uint16
	for i := 0; i < len(b); {
		c := b[i]
		if c != '+' {
			if c < utf8.RuneSelf {
				out = append(out, c)
			} else {
				out = utf8.AppendRune(out, utf8.RuneError)
			}
			i++
			continue
		}
		i++
		if i < len(b) && b[i] == '-' {
			out = append(out, '+')
			i++
			continue
		}
		var acc uint32
		nbits := 0
		units = units[:0]
		for i < len(b) {
			v := b64Value(b[i])
			if v < 0 {
				break
			}
			acc = acc<<6 | uint32(v)
			nbits += 6
			if nbits >= 16 {
				nbits -= 16
				units = append(units, uint16(acc>>nbits))
				acc &= 1<<nbits - 1
			}
			i++
		}
		for _, r := range utf16.Decode(units) {
			out = utf8.AppendRune(out, r)
		}
		if i < len(b) && b[i] == '-' {
			i++
		}
	}
	return string(out)
}

func b64Value(c byte) int {
	switch {
	case 'A' <= c && c <= 'Z':
		return int(c - 'A')
	case 'a' <= c && c <= 'z':
		return int(c-'a') + 26
	case '0' <= c && c <= '9':
		return int(c-'0') + 52
	case c == '+':
		return 62
	case c == '/':
		return 63
	}
	return -1
}
