package config

import (
	"context"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/prom"
)

// EnvPrefix starts every environment variable that sets a key:
// SMARTLAYER_STORE_REDIS_ADDR sets store.redis.addr. Lists take
// comma-separated values.
const EnvPrefix = "SMARTLAYER_"

// Source says where the layers above the defaults come from.
type Source struct {
	// File is a YAML file; empty means none.
	File string
	// Environ returns KEY=VALUE pairs; nil means os.Environ.
	Environ func() []string
	// Flags are key → value overrides from the command line, applied last.
	Flags map[string]any
}

// Load builds the configuration: defaults → File → environment → Flags,
// then validates it. Unknown keys are errors, so a typo never silently
// falls back to a default.
func Load(src Source) (Config, error) {
	defaults := koanf.New(".")
	def, err := defaultsMap()
	if err != nil {
		return Config{}, err
	}
	if err := defaults.Load(confmap.Provider(def, "."), nil); err != nil {
		return Config{}, fmt.Errorf("load defaults: %w", err)
	}
	k := defaults.Copy()
	known := map[string]bool{}
	for _, key := range defaults.Keys() {
		known[key] = true
	}
	if src.File != "" {
		if err := k.Load(file.Provider(src.File), yaml.Parser()); err != nil {
			return Config{}, fmt.Errorf("load %s: %w", src.File, err)
		}
	}
	envKeys := envKeyIndex(known)
	isList := func(key string) bool { _, ok := k.Get(key).([]any); return ok }
	var unknown []error
	fromEnv := map[string]string{} // key → the variable that set it
	environ := src.Environ
	if environ == nil {
		environ = os.Environ
	}
	err = k.Load(env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: environ,
		TransformFunc: func(name, v string) (string, any) {
			short := strings.TrimPrefix(name, EnvPrefix)
			if short == "CONFIG" || strings.HasPrefix(short, "TEST_") {
				return "", nil // the config file's path; the test harness's variables
			}
			key, ok := envKeys[short]
			if !ok {
				key, ok = deprecatedEnv[short]
			}
			if !ok {
				unknown = append(unknown, &KeyError{Key: name, Msg: "unknown environment variable"})
				return "", nil
			}
			fromEnv[key] = name
			if isList(key) {
				return key, splitList(v)
			}
			return key, v
		},
	}), nil)
	if err != nil {
		return Config{}, fmt.Errorf("load environment: %w", err)
	}
	if len(src.Flags) > 0 {
		flags := make(map[string]any, len(src.Flags))
		for key, v := range src.Flags {
			if s, ok := v.(string); ok && isList(key) {
				v = splitList(s) // --redis-addr a:1,b:2 as the environment reads it
			}
			flags[key] = v
		}
		if err := k.Load(confmap.Provider(flags, "."), nil); err != nil {
			return Config{}, fmt.Errorf("load flags: %w", err)
		}
	}
	notices := applyDeprecated(k, defaults)
	for _, key := range k.Keys() {
		if !known[key] && !strings.HasPrefix(key, "quota.plans.") {
			unknown = append(unknown, &KeyError{Key: key, Msg: "unknown key (misspelt?)"})
		}
	}
	if len(unknown) > 0 {
		return Config{}, errors.Join(unknown...)
	}
	var c Config
	if err := k.UnmarshalWithConf("", &c, koanf.UnmarshalConf{DecoderConfig: decoderConfig(&c)}); err != nil {
		// Name the environment variable when one set the bad value.
		var vars []string
		for key, name := range fromEnv {
			if strings.Contains(err.Error(), "'"+key+"'") {
				vars = append(vars, name)
			}
		}
		if len(vars) > 0 {
			sort.Strings(vars)
			return Config{}, fmt.Errorf("decode configuration (set by %s): %w", strings.Join(vars, ", "), err)
		}
		return Config{}, fmt.Errorf("decode configuration: %w", err)
	}
	c.link()
	c.Notices = notices
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// splitList reads "a, b,c" as [a b c]; an empty value is an empty list.
func splitList(v string) []string {
	out := []string{}
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func decoderConfig(out any) *mapstructure.DecoderConfig {
	return &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			durationNeedsUnit,
			stringToLocation,
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
			mapstructure.TextUnmarshallerHookFunc()),
		WeaklyTypedInput: true,
		// A misspelt key is an error that names it, not a silent default.
		ErrorUnused: true,
		TagName:     "koanf",
		Result:      out,
	}
}

// defaultsMap turns Default() into the nested map koanf merges the other
// layers onto, so every key exists (and is known to the env mapping).
func defaultsMap() (map[string]any, error) {
	m, ok := toMap(reflect.ValueOf(Default())).(map[string]any)
	if !ok {
		return nil, errors.New("defaults are not a map")
	}
	return m, nil
}

func toMap(v reflect.Value) any {
	if v.Type() == durationType {
		return v.Interface().(time.Duration).String() // as a user writes it
	}
	switch v.Kind() {
	case reflect.Struct:
		out := make(map[string]any, v.NumField())
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			tag := f.Tag.Get("koanf")
			if tag == "" || tag == "-" {
				continue
			}
			out[tag] = toMap(v.Field(i))
		}
		return out
	case reflect.Slice:
		if v.IsNil() {
			return []any{}
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = toMap(v.Index(i))
		}
		return out
	case reflect.Map:
		out := make(map[string]any, v.Len())
		for _, k := range v.MapKeys() {
			out[fmt.Sprint(k.Interface())] = toMap(v.MapIndex(k))
		}
		return out
	case reflect.String:
		return v.String() // also unwraps Secret, Mode, …
	case reflect.Pointer:
		if loc, ok := v.Interface().(*time.Location); ok && loc != nil {
			return loc.String()
		}
		return v.Interface()
	default:
		if m, ok := v.Interface().(encoding.TextMarshaler); ok {
			if b, err := m.MarshalText(); err == nil {
				return string(b) // enums kept as numbers in Go
			}
		}
		return v.Interface()
	}
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	locationType = reflect.TypeOf((*time.Location)(nil))
)

// durationNeedsUnit rejects a bare number for a duration: YAML's 50 would
// otherwise decode as 50ns, and a decision budget of 50ns allows everything.
func durationNeedsUnit(from, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return nil, fmt.Errorf("%v needs a unit, e.g. %vms or %vs", data, data, data)
	}
	return data, nil
}

// stringToLocation reads an IANA time zone name.
func stringToLocation(from, to reflect.Type, data any) (any, error) {
	if to != locationType || from.Kind() != reflect.String {
		return data, nil
	}
	loc, err := time.LoadLocation(data.(string))
	if err != nil {
		return nil, fmt.Errorf("%q is not an IANA time zone", data)
	}
	return loc, nil
}

// deprecatedKeys still load, with a notice. A key with a replacement is
// moved there (unless the replacement is set too, which wins); one without
// is dropped, its note saying what to set instead — for a key whose job is
// now done by several keys — or, with no note, that it no longer does
// anything.
var deprecatedKeys = []struct{ old, replacement, note string }{
	{old: "report.sensitive_paths", replacement: "behavior.sensitive_paths"},
	{old: "llm.narrative_timeout", replacement: "report.narrative_timeout"},
	// One queue, worker pool, timeout and verdict cache per use of the LLM:
	// behavior.llm.* and payload.llm.*; the client only calls.
	{old: "llm.timeout", note: "set behavior.llm.timeout and payload.llm.timeout"},
	{old: "llm.max_concurrency", note: "set behavior.llm.workers and payload.llm.workers"},
	{old: "llm.queue_size"},
	{old: "llm.cache_ttl", note: "set behavior.llm.cache_ttl and payload.llm.cache_ttl"},
	{old: "llm.cache_size", note: "set behavior.llm.cache_size and payload.llm.cache_size"},
	{old: "payload.llm_mode", replacement: "payload.llm.mode"},
	{old: "payload.min_confidence", replacement: "payload.llm.min_confidence"},
	{old: "payload.llm_max_excerpt", replacement: "payload.llm.max_excerpt"},
	{old: "payload.llm_queue_size", replacement: "payload.llm.queue_size"},
	{old: "payload.llm_workers", replacement: "payload.llm.workers"},
	{old: "payload.llm_timeout", replacement: "payload.llm.timeout"},
	{old: "payload.verdict_cache_size", replacement: "payload.llm.cache_size"},
	{old: "payload.verdict_ttl", replacement: "payload.llm.cache_ttl"},
	// One address or several (Cluster seeds, Sentinels): a list.
	{old: "store.redis.addr", replacement: "store.redis.addrs"},
}

// deprecatedEnv maps the environment spelling of each deprecated key.
var deprecatedEnv = func() map[string]string {
	m := make(map[string]string, len(deprecatedKeys))
	for _, d := range deprecatedKeys {
		m[strings.ToUpper(strings.ReplaceAll(d.old, ".", "_"))] = d.old
	}
	return m
}()

// applyDeprecated moves each deprecated key that was set to its
// replacement (unless that is set too, which wins), drops the others, and
// returns a notice per key. Only keys set above the defaults count: the defaults never hold a
// deprecated key.
func applyDeprecated(k, defaults *koanf.Koanf) []string {
	var notices []string
	for _, d := range deprecatedKeys {
		if defaults.Exists(d.old) || !k.Exists(d.old) {
			continue
		}
		v := k.Get(d.old)
		k.Delete(d.old)
		if d.replacement == "" {
			if d.note != "" {
				notices = append(notices, fmt.Sprintf("%s is deprecated and no longer used: %s", d.old, d.note))
			} else {
				notices = append(notices, fmt.Sprintf("%s is deprecated and no longer used; remove it", d.old))
			}
			continue
		}
		notices = append(notices, fmt.Sprintf("%s is deprecated: use %s", d.old, d.replacement))
		if reflect.DeepEqual(k.Get(d.replacement), defaults.Get(d.replacement)) {
			_ = k.Set(d.replacement, v)
		}
	}
	return notices
}

// envKeyIndex maps STORE_REDIS_ADDR to store.redis.addr for every known key.
// Matching against known keys (rather than replacing every '_' with '.')
// keeps keys that contain underscores, such as server.authz_addr, reachable.
func envKeyIndex(keys map[string]bool) map[string]string {
	idx := make(map[string]string, len(keys))
	for k := range keys {
		if strings.HasPrefix(k, "quota.plans.") {
			continue // plans are structured; set them in the file
		}
		idx[strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = k
	}
	return idx
}

// Watch reloads the configuration when src.File's content changes and
// calls apply with each new valid configuration. Only events for the file
// itself count (and Kubernetes ConfigMap symlink swaps, "..data"), and
// only a content change reloads: a log file next to the config must not
// cause reloads. An invalid file keeps the last good configuration: the
// error is logged once per content and apply is not called. reg (may be
// nil) gets smartlayer_config_reloads_total{result}. Watch returns when
// ctx is done.
func Watch(ctx context.Context, src Source, logger *slog.Logger, reg prometheus.Registerer, apply func(Config)) error {
	reloads := prom.CounterVec("smartlayer_config_reloads_total",
		"Configuration file changes seen, by result (applied, rejected).", "result")
	if err := prom.Register(reg, reloads); err != nil {
		return fmt.Errorf("config watch metrics: %w", err)
	}
	if src.File == "" {
		<-ctx.Done()
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", src.File, err)
	}
	defer w.Close()
	// Watch the directory: editors and Kubernetes ConfigMaps replace the
	// file (rename, symlink swap) rather than write it in place.
	dir, name := filepath.Dir(src.File), filepath.Base(src.File)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	last := fileDigest(src.File) // the content serve started with
	// Debounce: one save is often several events.
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			base := filepath.Base(ev.Name)
			if base != name && base != "..data" {
				continue
			}
			if ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
				timer = time.After(100 * time.Millisecond)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			logger.Warn("config watch error", "file", src.File, "err", err)
		case <-timer:
			timer = nil
			digest := fileDigest(src.File)
			if digest == last {
				continue // touched, renamed back, or a neighbour's event
			}
			last = digest
			c, err := Load(src)
			if err != nil {
				reloads.WithLabelValues("rejected").Inc()
				logger.Error("config reload rejected; keeping the last good configuration", "file", src.File, "err", err)
				continue
			}
			reloads.WithLabelValues("applied").Inc()
			logger.Info("config reloaded", "file", src.File)
			apply(c)
		}
	}
}

// fileDigest hashes the file's content ("" when it cannot be read, which
// differs from any content).
func fileDigest(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return string(sum[:])
}
