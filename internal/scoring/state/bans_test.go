package state

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartlayer/smartlayer/internal/scoring"
)

// stores returns both backends; the Redis one skips without a test Redis.
func stores() map[string]func(t *testing.T) scoring.State {
	return map[string]func(t *testing.T) scoring.State{
		"memory": func(t *testing.T) scoring.State { return newMemory(t, DefaultMemoryOptions()) },
		"redis": func(t *testing.T) scoring.State {
			r, _, _ := newRedis(t)
			return r
		},
	}
}

func manualBan(t *testing.T, st scoring.State, key string, ttl time.Duration) {
	t.Helper()
	if _, err := st.Ban(context.Background(), key, scoring.BanRequest{Reason: "op", Now: t0, TTL: ttl, Manual: true}); err != nil {
		t.Fatal(err)
	}
}

// A manual network ban matches every client inside it, and only those;
// both backends agree, and nothing is listed that Check would not honour.
func TestManualNetworkBans(t *testing.T) {
	type probe struct {
		client string // a client key as scoring.ClientKey makes it
		by     string // the ban that matches, "" for none
	}
	cases := map[string]struct {
		bans   []string
		probes []probe
	}{
		"/32 covers every /64 in it": {[]string{"2001:db8::/32"}, []probe{
			{"2001:db8::/64", "2001:db8::/32"},
			{"2001:db8:ffff:ffff::/64", "2001:db8::/32"},
			{"2001:db8:7::1", "2001:db8::/32"}, // ipv6_prefix 128
			{"2001:db9::/64", ""},
			{"2001:db7:ffff:ffff::/64", ""},
		}},
		"IPv4 /16": {[]string{"10.1.0.0/16"}, []probe{
			{"10.1.0.0", "10.1.0.0/16"},
			{"10.1.255.255", "10.1.0.0/16"},
			{"::ffff:10.1.2.3", "10.1.0.0/16"},
			{"10.2.0.1", ""},
			{"10.0.255.255", ""},
		}},
		"a client's own group": {[]string{"2001:db8:1::/64", "192.0.2.7"}, []probe{
			{"2001:db8:1::/64", "2001:db8:1::/64"},
			{"2001:db8:1::9", "2001:db8:1::/64"},
			{"2001:db8:2::/64", ""},
			{"192.0.2.7", "192.0.2.7"},
			{"192.0.2.8", ""},
		}},
		"nested: the longest covering ban applies": {[]string{"2001:db8::/32", "2001:db8:5::/48"}, []probe{
			{"2001:db8:5:1::/64", "2001:db8:5::/48"},
			{"2001:db8:6:1::/64", "2001:db8::/32"},
		}},
		"not an address": {[]string{"unknown"}, []probe{{"unknown", "unknown"}, {"10.0.0.1", ""}}},
	}
	for bname, mk := range stores() {
		t.Run(bname, func(t *testing.T) {
			for name, tc := range cases {
				t.Run(name, func(t *testing.T) {
					st := mk(t)
					ctx := context.Background()
					for _, b := range tc.bans {
						manualBan(t, st, b, time.Hour)
					}
					for _, p := range tc.probes {
						got, err := st.Check(ctx, scoring.Observation{ClientKey: p.client, Now: t0.Add(time.Minute), Windows: windows()})
						if err != nil {
							t.Fatal(err)
						}
						switch {
						case p.by == "" && got.Ban != nil:
							t.Errorf("%s banned by %+v", p.client, got.Ban)
						case p.by != "" && (got.Ban == nil || got.Ban.ClientKey != p.by || !got.Ban.Manual):
							t.Errorf("%s: ban %+v, want %s", p.client, got.Ban, p.by)
						}
					}
					bans, err := st.Bans(ctx, t0.Add(time.Minute), 100)
					if err != nil {
						t.Fatal(err)
					}
					var listed []string
					for _, b := range bans {
						listed = append(listed, b.ClientKey)
						// Listed means enforced: the network's first address is banned.
						probe := b.ClientKey
						if p, err := netip.ParsePrefix(b.ClientKey); err == nil {
							probe = p.Addr().String()
						}
						if st, _ := st.Check(ctx, scoring.Observation{ClientKey: probe, Now: t0.Add(time.Minute), Windows: windows()}); st.Ban == nil {
							t.Errorf("listed %s, but %s is not banned", b.ClientKey, probe)
						}
					}
					slices.Sort(listed)
					want := slices.Sorted(slices.Values(tc.bans))
					if !slices.Equal(listed, want) {
						t.Errorf("listed %v, want %v", listed, want)
					}
					// Expired: neither matched nor listed.
					later := t0.Add(2 * time.Hour)
					for _, p := range tc.probes {
						if st, _ := st.Check(ctx, scoring.Observation{ClientKey: p.client, Now: later, Windows: windows()}); st.Ban != nil {
							t.Errorf("%s banned after expiry by %+v", p.client, st.Ban)
						}
					}
					if bans, _ := st.Bans(ctx, later, 100); len(bans) != 0 {
						t.Errorf("listed after expiry: %+v", bans)
					}
				})
			}
			t.Run("unban lifts the network", func(t *testing.T) {
				st := mk(t)
				ctx := context.Background()
				manualBan(t, st, "2001:db8::/32", time.Hour)
				if ok, err := st.Unban(ctx, "2001:db8::/32", t0); err != nil || !ok {
					t.Fatalf("Unban = %v %v", ok, err)
				}
				if got, _ := st.Check(ctx, scoring.Observation{ClientKey: "2001:db8:1::/64", Now: t0, Windows: windows()}); got.Ban != nil {
					t.Fatalf("still banned: %+v", got.Ban)
				}
				if ok, _ := st.Unban(ctx, "2001:db8::/32", t0); ok {
					t.Fatal("second Unban reported an active ban")
				}
			})
		})
	}
}

// Another replica sees a manual ban within its refresh interval.
func TestRedisManualBansReachOtherReplicas(t *testing.T) {
	a, c, prefix := newRedis(t)
	b, err := NewRedis(c, RedisOptions{Prefix: prefix, ManualRefresh: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	obs := scoring.Observation{ClientKey: "10.9.8.7", Now: t0, Windows: windows()}
	if st, _ := b.Check(ctx, obs); st.Ban != nil {
		t.Fatal("banned before any ban")
	}
	manualBan(t, a, "10.9.0.0/16", time.Hour)
	time.Sleep(40 * time.Millisecond)
	if st, err := b.Check(ctx, obs); err != nil || st.Ban == nil || st.Ban.ClientKey != "10.9.0.0/16" {
		t.Fatalf("replica b: %+v %v", st.Ban, err)
	}
	if _, err := a.Unban(ctx, "10.9.0.0/16", t0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(40 * time.Millisecond)
	if st, _ := b.Check(ctx, obs); st.Ban != nil {
		t.Fatalf("replica b after unban: %+v", st.Ban)
	}
}

// Issue 18: a flood of empty-user-agent clients, each from its own IPv6
// /64, fills the memory ban table. It never evicts a manual ban, nor the
// attacker's own (a repeat offender's longer ban); automatic bans group
// IPv6 by /64; every drop is counted and the full table is logged.
func TestBanFloodKeepsManualAndLongestBans(t *testing.T) {
	const maxBans, flood = 512, 126_000
	reg := prometheus.NewRegistry()
	var logs strings.Builder
	m := newMemory(t, MemoryOptions{MaxBans: maxBans, Shards: 4, MaxClients: 10_000, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	b, err := scoring.NewBehavior(scoring.DefaultBehaviorConfig(), m, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx := context.Background()
	check := func(ip string, at time.Time, ua string) scoring.Outcome {
		a := netip.MustParseAddr(ip)
		out, err := b.Check(ctx, &scoring.Request{Time: at, ClientIP: a, ClientKey: a.String(), Path: "/",
			Headers: map[string]string{"user-agent": ua}})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if _, err := b.AddBan(ctx, "198.51.100.0/24", "operator", 24*time.Hour, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddBan(ctx, "2001:db8:beef::1", "operator", 24*time.Hour, t0); err != nil {
		t.Fatal(err)
	}
	// The attacker offends, serves its hour, offends again: two hours.
	attacker := "2001:db8:a:b::1"
	check(attacker, t0, "")
	at := t0.Add(61 * time.Minute)
	if out := check(attacker, at, ""); out.Ban == nil || out.Ban.Offence != 2 {
		t.Fatalf("second offence: %+v", out)
	}
	// Another address in the attacker's /64 is the same client.
	if out := check("2001:db8:a:b:ffff::2", at, "Mozilla/5.0"); out.Reason != scoring.ReasonBanned {
		t.Fatalf("same /64 not banned: %+v", out)
	}
	at = at.Add(time.Second)
	for i := range flood {
		ip := fmt.Sprintf("2001:db8:%x:%x::1", 0x100+i>>16, i&0xffff)
		if out := check(ip, at, ""); out.Reason != scoring.ReasonEmptyUserAgent {
			t.Fatalf("flood %d: %+v", i, out)
		}
	}
	for _, c := range []string{attacker, "2001:db8:a:b:1::1", "198.51.100.77", "2001:db8:beef::9"} {
		if out := check(c, at.Add(time.Minute), "Mozilla/5.0"); out.Reason != scoring.ReasonBanned {
			t.Errorf("%s not banned after the flood: %+v", c, out)
		}
	}
	bans, _ := m.Bans(ctx, at, 1_000_000)
	if len(bans) > maxBans+2 {
		t.Errorf("%d bans, bound %d + 2 manual", len(bans), maxBans)
	}
	evicted := testutil.ToFloat64(m.evictions.WithLabelValues(evictBan))
	if evicted < flood-maxBans {
		t.Errorf("%v evictions counted, want at least %d", evicted, flood-maxBans)
	}
	if n := strings.Count(logs.String(), "ban table full"); n != 1 {
		t.Errorf("%d warnings, want 1 (rate-limited):\n%s", n, logs.String())
	}
}
