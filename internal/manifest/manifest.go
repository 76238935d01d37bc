// Package manifest reads Kubernetes-style YAML documents. The tests that
// keep the shipped Envoy, Istio and Kubernetes files consistent with the
// code walk them with it.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	goyaml "go.yaml.in/yaml/v3"
)

// Doc is one YAML document of a (possibly multi-document) file.
type Doc struct {
	File string // base name of the file it came from
	Raw  map[string]any
}

// Kind, APIVersion, Name and Namespace read the fields every Kubernetes
// object has; missing ones are "".
func (d Doc) Kind() string       { return Str(d.Raw, "kind") }
func (d Doc) APIVersion() string { return Str(d.Raw, "apiVersion") }
func (d Doc) Name() string       { return Str(d.Raw, "metadata", "name") }
func (d Doc) Namespace() string  { return Str(d.Raw, "metadata", "namespace") }

// ReadDocs parses every document of a YAML stream; empty documents are
// skipped.
func ReadDocs(path string) ([]Doc, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := goyaml.NewDecoder(bytes.NewReader(data))
	var docs []Doc
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if m != nil {
			docs = append(docs, Doc{File: filepath.Base(path), Raw: m})
		}
	}
}

// Get walks nested maps (string keys) and lists (int keys); anything
// missing yields nil.
func Get(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k < 0 || k >= len(l) {
				return nil
			}
			v = l[k]
		default:
			return nil
		}
	}
	return v
}

// Str is Get for a string; anything else yields "".
func Str(v any, keys ...any) string {
	s, _ := Get(v, keys...).(string)
	return s
}
