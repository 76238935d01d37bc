package state

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smartlayer/smartlayer/internal/scoring"
)

// manualBans holds operator bans apart from automatic ones: never
// evicted, and a network ban matches every client inside it. Both
// backends use it — Memory as the table itself, Redis as its snapshot of
// the shared hash.
type manualBans struct {
	mu sync.RWMutex
	// n is the number of entries: Check skips the lookup while it is 0.
	n    atomic.Int32
	nets map[netip.Prefix]scoring.Ban
	keys map[string]scoring.Ban // bans whose key is not an address
	// lens counts entries per prefix length, IPv4 then IPv6, so a lookup
	// tries only the lengths in use.
	lens4 [33]int32
	lens6 [129]int32
}

func newManualBans() *manualBans {
	return &manualBans{nets: map[netip.Prefix]scoring.Ban{}, keys: map[string]scoring.Ban{}}
}

// network is the network a ban key or client key stands for: an address
// is its own /32 or /128, an IPv4-mapped one unmapped. ok is false for a
// key that is not an address.
func network(key string) (netip.Prefix, bool) {
	if a, err := netip.ParseAddr(key); err == nil {
		a = a.Unmap().WithZone("")
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	p, err := netip.ParsePrefix(key)
	if err != nil {
		return netip.Prefix{}, false
	}
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked(), true
}

func (m *manualBans) lens(p netip.Prefix) []int32 {
	if p.Addr().Is4() {
		return m.lens4[:]
	}
	return m.lens6[:]
}

// put stores b under key, replacing a manual ban of the same key, and
// drops expired ones.
func (m *manualBans) put(key string, b scoring.Ban) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(b.Created)
	m.putLocked(key, b)
}

func (m *manualBans) putLocked(key string, b scoring.Ban) {
	if p, ok := network(key); ok {
		if _, dup := m.nets[p]; !dup {
			m.lens(p)[p.Bits()]++
			m.n.Add(1)
		}
		m.nets[p] = b
		return
	}
	if _, dup := m.keys[key]; !dup {
		m.n.Add(1)
	}
	m.keys[key] = b
}

// remove deletes key's manual ban and reports whether it was active.
func (m *manualBans) remove(key string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b scoring.Ban
	var ok bool
	if p, isNet := network(key); isNet {
		if b, ok = m.nets[p]; ok {
			delete(m.nets, p)
			m.lens(p)[p.Bits()]--
		}
	} else if b, ok = m.keys[key]; ok {
		delete(m.keys, key)
	}
	if ok {
		m.n.Add(-1)
	}
	return ok && b.Expires.After(now)
}

// match returns the active manual ban covering clientKey: its own, or one
// of a network holding it (an IPv6 client key such as "2001:db8::/64" is
// held by networks of /64 and shorter).
func (m *manualBans) match(clientKey string, now time.Time) (scoring.Ban, bool) {
	if m.n.Load() == 0 {
		return scoring.Ban{}, false
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, ok := network(clientKey)
	if !ok {
		b, ok := m.keys[clientKey]
		return b, ok && b.Expires.After(now)
	}
	lens := m.lens(p)
	for l := p.Bits(); l >= 0; l-- {
		if lens[l] == 0 {
			continue
		}
		if b, ok := m.nets[netip.PrefixFrom(p.Addr(), l).Masked()]; ok && b.Expires.After(now) {
			return b, true
		}
	}
	return scoring.Ban{}, false
}

// list returns up to limit active manual bans.
func (m *manualBans) list(now time.Time, limit int) []scoring.Ban {
	if m.n.Load() == 0 {
		return nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []scoring.Ban
	for _, b := range m.nets {
		if len(out) >= limit {
			return out
		}
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	for _, b := range m.keys {
		if len(out) >= limit {
			return out
		}
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	return out
}

// replace swaps the whole table (a Redis snapshot).
func (m *manualBans) replace(bans map[string]scoring.Ban) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nets, m.keys = map[netip.Prefix]scoring.Ban{}, map[string]scoring.Ban{}
	m.lens4, m.lens6 = [33]int32{}, [129]int32{}
	m.n.Store(0)
	for k, b := range bans {
		m.putLocked(k, b)
	}
}

// sweep drops bans expired at now. The lock is held.
func (m *manualBans) sweep(now time.Time) {
	for p, b := range m.nets {
		if !b.Expires.After(now) {
			delete(m.nets, p)
			m.lens(p)[p.Bits()]--
			m.n.Add(-1)
		}
	}
	for k, b := range m.keys {
		if !b.Expires.After(now) {
			delete(m.keys, k)
			m.n.Add(-1)
		}
	}
}
