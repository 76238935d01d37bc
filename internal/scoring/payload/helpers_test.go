package payload

import "testing"

func newTestValidator(t testing.TB, cfg Config, opts ...Option) *Validator {
	t.Helper()
	v, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
