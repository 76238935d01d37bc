package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/smartlayer/smartlayer/internal/scoring"
)

// BanAdmin is what the ban API needs; *scoring.Behavior satisfies it.
type BanAdmin interface {
	ListBans(ctx context.Context, now time.Time, limit int) ([]scoring.Ban, error)
	AddBan(ctx context.Context, clientKey, reason string, ttl time.Duration, now time.Time) (scoring.Ban, error)
	Unban(ctx context.Context, clientKey string, now time.Time) (bool, error)
}

// BanRequest is the body of POST /v1/bans.
type BanRequest struct {
	// IP is an address or a network ("2001:db8::/64", "10.0.0.0/16"); a
	// network bans every address inside it and may be no wider than
	// behavior.min_ban_prefix_v4/v6 (/16 and /32 by default).
	IP     string `json:"ip"`
	Reason string `json:"reason,omitempty"`
	// TTL is a Go duration ("30m", "2h"); empty means behavior.ban_ttl.
	TTL string `json:"ttl,omitempty"`
}

// BanList is the body of GET /v1/bans.
type BanList struct {
	Bans []scoring.Ban `json:"bans"`
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message,omitempty"`
}

const (
	maxBanBody   = 16 << 10
	maxReasonLen = 200
	maxBanTTL    = 365 * 24 * time.Hour
	// ManualReason is the reason of a ban posted without one.
	ManualReason = "manual"
)

// BansHandler serves the ban API:
//
//	GET    /v1/bans          list active bans (?limit=N)
//	POST   /v1/bans          ban {"ip": "...", "reason": "...", "ttl": "30m"}
//	DELETE /v1/bans/{ip}     lift a ban (and forget the client's offences)
//
// Every call needs "Authorization: Bearer <token>". Without a configured
// token every call answers 403: nobody may ban, and nobody may read who is
// banned (the list tells an attacker which of its addresses are burnt).
func BansHandler(b BanAdmin, token string, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h := &bansHandler{b: b, token: token, log: logger, now: time.Now}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/bans", h.auth(h.list))
	mux.HandleFunc("POST /v1/bans", h.auth(h.add))
	mux.HandleFunc("DELETE /v1/bans/{ip...}", h.auth(h.delete))
	return mux
}

type bansHandler struct {
	b     BanAdmin
	token string
	log   *slog.Logger
	now   func() time.Time
}

func (h *bansHandler) auth(next http.HandlerFunc) http.HandlerFunc {
	return requireToken(h.token, "ban administration", next).ServeHTTP
}

// requireToken lets through only requests bearing token; with no token
// configured, what ("ban administration") is disabled.
func requireToken(token, what string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			writeJSON(w, http.StatusForbidden, ErrorBody{Error: "forbidden",
				Message: what + " is disabled: set server.admin_token (SMARTLAYER_SERVER_ADMIN_TOKEN)"})
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="smartlayer-admin"`)
			writeJSON(w, http.StatusUnauthorized, ErrorBody{Error: "unauthorized", Message: "missing or wrong bearer token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *bansHandler) list(w http.ResponseWriter, r *http.Request) {
	limit := 0
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "bad_request", Message: "limit must be a positive integer"})
			return
		}
		limit = n
	}
	bans, err := h.b.ListBans(r.Context(), h.now(), limit)
	if err != nil {
		h.fail(w, r, "list bans", err)
		return
	}
	slices.SortFunc(bans, func(a, b scoring.Ban) int { return a.Expires.Compare(b.Expires) })
	if bans == nil {
		bans = []scoring.Ban{}
	}
	writeJSON(w, http.StatusOK, BanList{Bans: bans})
}

func (h *bansHandler) add(w http.ResponseWriter, r *http.Request) {
	var req BanRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBanBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "bad_request", Message: "body must be JSON {ip, reason, ttl}: " + err.Error()})
		return
	}
	if !validClient(req.IP) {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "bad_request", Message: "ip must be an IP address or a network (CIDR)"})
		return
	}
	reason := strings.TrimSpace(req.Reason)
	if reason == "" {
		reason = ManualReason
	}
	if len(reason) > maxReasonLen {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "bad_request", Message: "reason is longer than 200 bytes"})
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d < time.Second || d > maxBanTTL {
			writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "bad_request", Message: "ttl must be a Go duration from 1s to 8760h, e.g. 30m"})
			return
		}
		ttl = d
	}
	ban, err := h.b.AddBan(r.Context(), req.IP, reason, ttl, h.now())
	if errors.Is(err, scoring.ErrBanTooWide) {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "prefix_too_wide", Message: err.Error()})
		return
	}
	if err != nil {
		h.fail(w, r, "add ban", err)
		return
	}
	h.log.InfoContext(r.Context(), "admin: ban added", "client", ban.ClientKey, "reason", reason, "expires", ban.Expires)
	writeJSON(w, http.StatusCreated, ban)
}

func (h *bansHandler) delete(w http.ResponseWriter, r *http.Request) {
	ip := r.PathValue("ip")
	if !validClient(ip) {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "bad_request", Message: "path must end in an IP address or a network (CIDR)"})
		return
	}
	ok, err := h.b.Unban(r.Context(), ip, h.now())
	if err != nil {
		h.fail(w, r, "unban", err)
		return
	}
	if !ok {
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: "not_found", Message: "no active ban for " + ip})
		return
	}
	h.log.InfoContext(r.Context(), "admin: ban lifted", "client", ip)
	w.WriteHeader(http.StatusNoContent)
}

func (h *bansHandler) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.log.ErrorContext(r.Context(), "admin: "+what, "err", err)
	status := http.StatusServiceUnavailable
	if errors.Is(err, context.Canceled) {
		status = 499 // client went away; nobody reads this
	}
	writeJSON(w, status, ErrorBody{Error: "unavailable", Message: what + " failed: the state store did not answer"})
}

func validClient(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	_, err := netip.ParsePrefix(s)
	return err == nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
