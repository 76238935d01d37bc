package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/store"
	"github.com/smartlayer/smartlayer/internal/testenv"
)

// replicas returns two Redis stores sharing one Redis and key prefix, as
// two authz replicas do, each with its own local ban cache (ttl) and
// requests through a Batcher.
func replicas(t *testing.T, ttl time.Duration) (a, b *Redis, c redis.UniversalClient) {
	t.Helper()
	c = redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = c.Close() })
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	prefix := "lc" + hex.EncodeToString(rb[:]) + ":"
	mk := func() *Redis {
		bt, err := store.NewBatcher(c, store.NewAdaptiveTimeout(time.Second, 0, 3), 2, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewRedis(c, RedisOptions{Prefix: prefix, Scripts: bt, LocalCacheTTL: ttl, LocalCacheSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	return mk(), mk(), c
}

func banned(t *testing.T, r *Redis, client string, now time.Time) bool {
	t.Helper()
	st, err := r.Check(context.Background(), scoring.Observation{ClientKey: client, Now: now, Windows: windows()})
	if err != nil {
		t.Fatal(err)
	}
	return st.Ban != nil
}

// The local ban cache: a ban set on another replica is seen at the next
// Check (nothing is cached for a client not banned); a ban seen is then
// answered locally — even once Redis no longer has it — until the TTL;
// an unban through a replica clears its own cache at once, and another
// replica's within the TTL; a ban shorter than the TTL ends on time.
func TestRedisLocalBanCache(t *testing.T) {
	const ttl = time.Second
	ctx := context.Background()
	ban := func(r *Redis, client string, now time.Time, banTTL time.Duration) {
		t.Helper()
		if _, err := r.Ban(ctx, client, scoring.BanRequest{Reason: "t", Score: 9, Now: now, TTL: banTTL}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("ban on another replica is seen at once", func(t *testing.T) {
		a, b, _ := replicas(t, ttl)
		if banned(t, a, "1.1.1.1", t0) {
			t.Fatal("banned before any ban")
		}
		ban(b, "1.1.1.1", t0, time.Hour)
		if !banned(t, a, "1.1.1.1", t0.Add(time.Millisecond)) {
			t.Fatal("a ban set on replica b is not seen by a")
		}
	})
	t.Run("unban on another replica is seen within the TTL", func(t *testing.T) {
		a, b, c := replicas(t, ttl)
		ban(b, "1.1.1.2", t0, time.Hour)
		if !banned(t, a, "1.1.1.2", t0) {
			t.Fatal("not banned")
		}
		if _, err := b.Unban(ctx, "1.1.1.2", t0); err != nil {
			t.Fatal(err)
		}
		if banned(t, b, "1.1.1.2", t0) {
			t.Error("the replica that unbanned still answers the ban")
		}
		// a answers from its cache, without Redis: with Redis gone it
		// still denies.
		keys, _ := c.Keys(ctx, a.prefix+"*").Result()
		if len(keys) > 0 {
			_ = c.Del(ctx, keys...).Err()
		}
		if !banned(t, a, "1.1.1.2", t0.Add(ttl-time.Millisecond)) {
			t.Error("replica a forgot the ban before the TTL")
		}
		if banned(t, a, "1.1.1.2", t0.Add(ttl)) {
			t.Error("replica a still bans after the TTL")
		}
	})
	t.Run("unban through a replica clears its cache at once", func(t *testing.T) {
		a, _, _ := replicas(t, ttl)
		ban(a, "1.1.1.3", t0, time.Hour)
		if !banned(t, a, "1.1.1.3", t0) {
			t.Fatal("not banned")
		}
		if _, err := a.Unban(ctx, "1.1.1.3", t0); err != nil {
			t.Fatal(err)
		}
		if banned(t, a, "1.1.1.3", t0.Add(time.Millisecond)) {
			t.Error("banned right after its unban")
		}
	})
	t.Run("a ban shorter than the TTL ends on time", func(t *testing.T) {
		a, _, _ := replicas(t, ttl)
		ban(a, "1.1.1.4", t0, 200*time.Millisecond)
		if !banned(t, a, "1.1.1.4", t0.Add(199*time.Millisecond)) {
			t.Fatal("not banned")
		}
		if banned(t, a, "1.1.1.4", t0.Add(200*time.Millisecond)) {
			t.Error("banned past the ban's expiry")
		}
	})
	t.Run("no cache: Redis decides every Check", func(t *testing.T) {
		a, _, c := replicas(t, 0)
		ban(a, "1.1.1.5", t0, time.Hour)
		keys, _ := c.Keys(ctx, a.prefix+"*").Result()
		_ = c.Del(ctx, keys...).Err()
		if banned(t, a, "1.1.1.5", t0) {
			t.Error("banned from a cache that is off")
		}
	})
}
