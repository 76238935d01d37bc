package main

import (
	"reflect"
	"testing"

	"github.com/smartlayer/smartlayer/internal/accesslog"
	"github.com/smartlayer/smartlayer/internal/config"
	"github.com/smartlayer/smartlayer/internal/scoring/payload"
)

// The configuration's defaults are what the README documents; each module
// has its own DefaultConfig. These tests keep the two from drifting apart.
func TestDefaultsMatchModules(t *testing.T) {
	d := config.Default()
	pc, err := payloadConfig(d.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if want := payload.DefaultConfig(); !reflect.DeepEqual(pc, want) {
		t.Errorf("payload defaults drifted:\n config: %+v\n module: %+v", pc, want)
	}
	ac, err := accessLogConfig(d)
	if err != nil {
		t.Fatal(err)
	}
	if want := accesslog.DefaultConfig(); !reflect.DeepEqual(ac, want) {
		t.Errorf("accesslog defaults drifted:\n config: %+v\n module: %+v", ac, want)
	}
}
