package quota

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/smartlayer/smartlayer/internal/pathnorm"
)

// Table is a compiled set of plans: immutable, safe for concurrent use, and
// swapped whole by Limiter.SetTable.
type Table struct {
	// norm is how request paths and route keys are normalized; the
	// lookups below hold normalized keys.
	norm      pathnorm.Options
	exact     map[string]*route
	templates []*route // most specific first
	prefixes  []*route // longest first
	routes    int
}

type routeKind uint8

const (
	kindExact routeKind = iota
	kindTemplate
	kindPrefix
)

// route is one route key with the limits every plan gives it.
type route struct {
	key  string
	kind routeKind
	segs []string // template segments; placeholders are "{}" (literals never hold braces)
	lits int      // template literal segments
	pfx  string   // prefix routes: the normalized text before '*'
	// base is, for a prefix route ending in "/*" when the trailing slash is
	// ignored, the directory itself ("/api/export" for "/api/export/*").
	base  string
	plans map[string]*planRoute
}

// planRoute is one plan's limits on one route.
type planRoute struct {
	plan, route string
	// part is "plan:route:", the stable middle of every counter key; it
	// survives reloads, so counters do too.
	part  string
	timed []timedLimit // configured timed windows, in window order
	life  int64        // lifetime limit; -1 when not configured
	// args is the Lua script's ARGV with the elapsed times left nil: the
	// lifetime limit, then per timed window length, elapsed, limit.
	args []any
}

type timedLimit struct {
	win   Window
	limit int64
}

// Compile validates plans in the YAML shape plan → route → window → limit and
// compiles them. Every problem is reported, each naming its key path, e.g.
//
//	quota.plans.free["/api/generate/"].per_minute: must be ≥ 0, got -1
//
// Route keys and request paths are normalized alike (internal/pathnorm,
// case-insensitive, trailing slash ignored; Config.Compile applies
// quota.case_sensitive and quota.trailing_slash), so two keys that name the
// same paths are rejected.
func Compile(plans map[string]map[string]map[string]int64) (*Table, error) {
	return compile(plans, pathnorm.Options{})
}

func compile(plans map[string]map[string]map[string]int64, norm pathnorm.Options) (*Table, error) {
	t := &Table{norm: norm, exact: map[string]*route{}}
	var errs []error
	byKey := map[string]*route{}
	shapes := map[string]string{} // normalized exact key or template shape → first route key
	rawShapes := map[string]string{}
	for _, plan := range sortedKeys(plans) {
		routes := plans[plan]
		pp := planPath(plan)
		if err := checkPlanName(plan); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", pp, err))
			continue
		}
		if len(routes) == 0 {
			errs = append(errs, fmt.Errorf("%s: plan has no routes (leave the plan out to forbid it every configured route)", pp))
			continue
		}
		for _, key := range sortedKeys(routes) {
			rp := pp + "[" + strconv.Quote(key) + "]"
			r, ok := byKey[key]
			if !ok {
				var err error
				r, err = parseRoute(key)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", rp, err))
					continue
				}
				raw := ""
				if r.kind == kindTemplate {
					raw = templateShape(r.segs)
					if other, dup := rawShapes[raw]; dup {
						errs = append(errs, fmt.Errorf("%s: matches the same paths as %q (only placeholder names differ)", rp, other))
						continue
					}
					rawShapes[raw] = key
				}
				shape := r.normalize(norm)
				if other, dup := shapes[shape]; dup {
					errs = append(errs, fmt.Errorf("%s: matches the same paths as %q once paths are normalized (case, trailing slash, dot segments, repeated slashes)", rp, other))
					continue
				}
				shapes[shape] = key
				byKey[key] = r
			}
			pr, err := compileLimits(plan, key, rp, routes[key])
			if err != nil {
				errs = append(errs, err)
				continue
			}
			r.plans[plan] = pr
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, r := range byKey {
		if len(r.plans) == 0 {
			continue
		}
		t.routes++
		switch r.kind {
		case kindExact:
			t.exact[r.pfx] = r
		case kindTemplate:
			t.templates = append(t.templates, r)
		case kindPrefix:
			t.prefixes = append(t.prefixes, r)
		}
	}
	sort.Slice(t.templates, func(i, j int) bool { return moreSpecific(t.templates[i], t.templates[j]) })
	sort.Slice(t.prefixes, func(i, j int) bool {
		a, b := t.prefixes[i], t.prefixes[j]
		if len(a.pfx) != len(b.pfx) {
			return len(a.pfx) > len(b.pfx)
		}
		return a.key < b.key
	})
	return t, nil
}

// moreSpecific orders templates: more literal segments first, then the one
// whose first literal comes earlier, then by key for a stable order.
func moreSpecific(a, b *route) bool {
	if a.lits != b.lits {
		return a.lits > b.lits
	}
	for i := 0; i < len(a.segs) && i < len(b.segs); i++ {
		al, bl := a.segs[i] != placeholder, b.segs[i] != placeholder
		if al != bl {
			return al
		}
	}
	return a.key < b.key
}

func compileLimits(plan, key, rp string, windows map[string]int64) (*planRoute, error) {
	pr := &planRoute{plan: plan, route: key, part: plan + ":" + key + ":", life: -1}
	if len(windows) == 0 {
		return nil, fmt.Errorf("%s: no limits (set at least one of per_minute, per_hour, per_day, lifetime)", rp)
	}
	var errs []error
	var set [numWindows]bool
	var vals [numWindows]int64
	for _, name := range sortedKeys(windows) {
		v := windows[name]
		wp := rp + "." + name
		w, ok := windowByName(name)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: unknown window (want per_minute, per_hour, per_day or lifetime)", wp))
			continue
		}
		max := int64(maxWindowLimit)
		if w == Lifetime {
			max = maxLifetimeLimit
		}
		switch {
		case v < 0:
			errs = append(errs, fmt.Errorf("%s: must be ≥ 0, got %d", wp, v))
			continue
		case v > max:
			errs = append(errs, fmt.Errorf("%s: must be ≤ %d, got %d", wp, max, v))
			continue
		}
		set[w], vals[w] = true, v
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for w := Window(0); w < Lifetime; w++ {
		if set[w] {
			pr.timed = append(pr.timed, timedLimit{win: w, limit: vals[w]})
		}
	}
	if set[Lifetime] {
		pr.life = vals[Lifetime]
	}
	pr.args = append(pr.args, pr.life)
	for _, tl := range pr.timed {
		pr.args = append(pr.args, windowMillis[tl.win], nil, tl.limit)
	}
	return pr, nil
}

func windowByName(name string) (Window, bool) {
	for w, n := range windowNames {
		if n == name {
			return Window(w), true
		}
	}
	return 0, false
}

// checkPlanName keeps plan names free of the characters that delimit counter
// keys, so "plan:route" can never be read two ways.
func checkPlanName(plan string) error {
	if plan == "" {
		return errors.New("plan name must not be empty")
	}
	for _, c := range plan {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok {
			return fmt.Errorf("plan name may use only letters, digits, '_', '-' and '.', got %q", c)
		}
	}
	return nil
}

// parseRoute validates a route key and classifies it.
func parseRoute(key string) (*route, error) {
	r := &route{key: key, plans: map[string]*planRoute{}}
	if !strings.HasPrefix(key, "/") {
		return nil, errors.New("route must start with '/'")
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c <= ' ' || c == 0x7f || c == '?' || c == '#' {
			return nil, fmt.Errorf("route must not contain %q (byte %d)", c, i)
		}
	}
	if i := strings.IndexByte(key, '*'); i >= 0 {
		if i != len(key)-1 {
			return nil, errors.New("'*' is only allowed as the last character (prefix route)")
		}
		r.kind, r.pfx = kindPrefix, key[:i]
		if strings.ContainsAny(r.pfx, "{}") {
			return nil, errors.New("a prefix route cannot have placeholders")
		}
		return r, nil
	}
	if !strings.ContainsAny(key, "{}") {
		r.kind = kindExact
		return r, nil
	}
	r.kind = kindTemplate
	names := map[string]bool{}
	for _, seg := range strings.Split(key[1:], "/") {
		if !strings.ContainsAny(seg, "{}") {
			r.segs = append(r.segs, seg)
			r.lits++
			continue
		}
		if len(seg) < 2 || seg[0] != '{' || seg[len(seg)-1] != '}' {
			return nil, fmt.Errorf("bad placeholder %q: a placeholder must be a whole segment like {id}", seg)
		}
		name := seg[1 : len(seg)-1]
		if !validName(name) {
			return nil, fmt.Errorf("bad placeholder %q: the name must be a letter or '_' followed by letters, digits or '_'", seg)
		}
		if names[name] {
			return nil, fmt.Errorf("placeholder {%s} appears twice", name)
		}
		names[name] = true
		r.segs = append(r.segs, placeholder)
	}
	return r, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9'
		if !ok {
			return false
		}
	}
	return true
}

// placeholder marks a template segment that matches any one non-empty segment.
const placeholder = "{}"

// templateShape is the template with placeholder names erased.
func templateShape(segs []string) string { return "/" + strings.Join(segs, "/") }

// normalize rewrites the route's lookup form under norm and returns the
// text two routes collide on: the normalized exact key (kept in pfx), the
// normalized template shape, or the normalized prefix followed by '*'.
func (r *route) normalize(norm pathnorm.Options) string {
	switch r.kind {
	case kindExact:
		r.pfx = pathnorm.Normalize(r.key, norm)
		return r.pfx
	case kindTemplate:
		shape := pathnorm.Normalize(templateShape(r.segs), norm)
		r.segs, r.lits = strings.Split(shape[1:], "/"), 0
		for _, s := range r.segs {
			if s != placeholder {
				r.lits++
			}
		}
		return shape
	default:
		if strings.HasSuffix(r.pfx, "/") {
			// A directory: the normalized directory and everything below.
			dir := pathnorm.Normalize(r.pfx, pathnorm.Options{CaseSensitive: norm.CaseSensitive, TrailingSlash: pathnorm.Ignore})
			if dir == "/" {
				r.pfx = "/"
			} else {
				r.pfx = dir + "/"
				if norm.TrailingSlash != pathnorm.Strict {
					r.base = dir
				}
			}
		} else {
			r.pfx = pathnorm.Normalize(r.pfx, norm)
		}
		return r.pfx + "*"
	}
}

// normalize returns the form of a request path the table's lookups hold.
func (t *Table) normalize(path string) string { return pathnorm.Normalize(path, t.norm) }

// match returns the most specific route for a normalized path, or nil.
func (t *Table) match(path string) *route {
	if t == nil {
		return nil
	}
	if r, ok := t.exact[path]; ok {
		return r
	}
	for _, r := range t.templates {
		if matchTemplate(r.segs, path) {
			return r
		}
	}
	for _, r := range t.prefixes {
		if strings.HasPrefix(path, r.pfx) || r.base != "" && path == r.base {
			return r
		}
	}
	return nil
}

// matchTemplate matches path segment by segment without allocating. A
// placeholder matches one non-empty segment.
func matchTemplate(segs []string, path string) bool {
	if len(path) == 0 || path[0] != '/' {
		return false
	}
	rest := path[1:]
	for i, want := range segs {
		var seg string
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			if i == len(segs)-1 {
				return false // the path has more segments
			}
			seg, rest = rest[:j], rest[j+1:]
		} else {
			if i != len(segs)-1 {
				return false // the path has fewer segments
			}
			seg, rest = rest, ""
		}
		if want == placeholder {
			if seg == "" {
				return false
			}
		} else if seg != want {
			return false
		}
	}
	return true
}

// Route returns the route key that governs path and whether one does. The
// path is normalized as Take does.
func (t *Table) Route(path string) (string, bool) {
	r := t.match(t.normalize(path))
	if r == nil {
		return "", false
	}
	return r.key, true
}

// Plans returns the plan names in the table, sorted.
func (t *Table) Plans() []string {
	if t == nil {
		return nil
	}
	seen := map[string]bool{}
	add := func(r *route) {
		for p := range r.plans {
			seen[p] = true
		}
	}
	for _, r := range t.exact {
		add(r)
	}
	for _, r := range t.templates {
		add(r)
	}
	for _, r := range t.prefixes {
		add(r)
	}
	return sortedKeys(seen)
}

// planPath renders "quota.plans.free", quoting names that are not plain
// identifiers.
func planPath(plan string) string {
	if validName(plan) {
		return "quota.plans." + plan
	}
	return "quota.plans[" + strconv.Quote(plan) + "]"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
