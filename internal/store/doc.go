// Package store holds what every stateful module shares about where its
// state lives: the store.* configuration, the one Redis client they share,
// and the building blocks their memory and Redis backends are made of —
// a sharded LRU (LRU), a Lua script runner that recovers from NOSCRIPT
// (Script, RunPipelined) and the Redis key escaper (EscapeKey, HashTag).
//
// It knows no module's state: behaviour scoring's lives in
// internal/scoring/state, quota counters in internal/quota.
package store
