package payload

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
)

// XML and SOAP bodies (text/xml, application/xml, */*+xml): text nodes
// (CDATA included, the predefined and numeric entities decoded) and
// attribute values, each on its own, at "body:$.root.child" and
// "body:$.root.child.@attr" — the JSON path spelling, so one exclusion
// syntax covers both — and element names as keys ("body-key:$.root"). The prolog, processing instructions and comments
// carry no data and are not inspected; of a DOCTYPE only what a
// DTD-processing parser would fetch or substitute is: SYSTEM identifiers
// and entity replacement texts, at "body:!DOCTYPE". Entities are never
// expanded (encoding/xml knows only the predefined ones; Strict=false
// leaves others as written), so a billion-laughs body costs its length.
// A syntax error does not end inspection: the rest of the body is
// inspected as raw text.

const locDoctype = "!DOCTYPE"

func (s *scan) xml(text string) {
	d := xml.NewDecoder(strings.NewReader(text))
	d.Strict = false
	d.CharsetReader = charsetReader
	p := &s.jpath
	p.frames, p.deep = p.frames[:0], false
	over := 0 // open elements beyond max_json_depth
	for {
		tok, err := d.RawToken()
		if err != nil {
			off := int(d.InputOffset())
			if off < len(text) {
				if rest := strings.TrimSpace(text[off:]); rest != "" && !errors.Is(err, io.EOF) {
					s.field(locBody, "", nil, rest, false)
				}
			}
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(p.frames) >= s.cfg.MaxJSONDepth {
				over++
				p.deep = true
			} else {
				p.frames = append(p.frames, jsonFrame{key: xmlName(t.Name)})
			}
			// Element names are data to XStream and XMLDecoder (class
			// names: <java.lang.ProcessBuilder>): inspected as keys.
			s.field(locBodyKey, "", p, xmlName(t.Name), false)
			for _, a := range t.Attr {
				p.frames = append(p.frames, jsonFrame{key: "@" + xmlName(a.Name)})
				s.field(locBody, "", p, a.Value, false)
				p.frames = p.frames[:len(p.frames)-1]
			}
		case xml.EndElement:
			switch {
			case over > 0:
				over--
				p.deep = over > 0
			case len(p.frames) > 0:
				p.frames = p.frames[:len(p.frames)-1]
			}
		case xml.CharData:
			if v := strings.TrimSpace(string(t)); v != "" {
				s.field(locBody, "", p, v, false)
			}
		case xml.Directive:
			s.doctype(string(t))
		}
	}
}

func xmlName(n xml.Name) string {
	if n.Space != "" {
		return n.Space + ":" + n.Local
	}
	return n.Local
}

// doctype inspects the parts of a DOCTYPE (or other markup declaration) a
// DTD-processing parser would act on: the literal after SYSTEM (a URI
// fetched: XXE) and, of an <!ENTITY …>, its replacement text. Public
// identifiers ("-//W3C//DTD XHTML 1.0//EN") and names are not data.
func (s *scan) doctype(d string) {
	prev := ""
	for i := 0; i < len(d); {
		c := d[i]
		switch {
		case c == '"' || c == '\'':
			end := strings.IndexByte(d[i+1:], c)
			if end < 0 {
				end = len(d) - i - 1
			}
			lit := d[i+1 : i+1+end]
			switch prev {
			case "PUBLIC":
				prev = "PUBLIC-ID" // the next literal is the system identifier
			default:
				s.field(locBody, locDoctype, nil, lit, false)
				prev = ""
			}
			i += end + 2
		case isNameByte(c):
			j := i
			for j < len(d) && isNameByte(d[j]) {
				j++
			}
			w := d[i:j]
			switch strings.ToUpper(w) {
			case "SYSTEM", "PUBLIC":
				prev = strings.ToUpper(w)
			default:
				if prev != "PUBLIC-ID" {
					prev = ""
				}
			}
			i = j
		default:
			i++
		}
	}
}

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':' || c == '%'
}
