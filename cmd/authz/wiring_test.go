package main

import (
	"reflect"
	"testing"

	"github.com/smartlayer/smartlayer/internal/accesslog"
	"github.com/smartlayer/smartlayer/internal/config"
	"github.com/smartlayer/smartlayer/internal/scoring"
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
	if bc, want := behaviorConfig(d.Behavior), scoring.DefaultBehaviorConfig(); !reflect.DeepEqual(bc, want) {
		t.Errorf("behavior defaults drifted:\n config: %+v\n module: %+v", bc, want)
	}
	if err := validateModules(d); err != nil {
		t.Errorf("defaults fail module validation: %v", err)
	}
	ac, err := accessLogConfig(d)
	if err != nil {
		t.Fatal(err)
	}
	if want := accesslog.DefaultConfig(); !reflect.DeepEqual(ac, want) {
		t.Errorf("accesslog defaults drifted:\n config: %+v\n module: %+v", ac, want)
	}
}
