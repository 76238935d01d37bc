package server

import (
	"context"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/smartlayer/smartlayer/internal/setting"
)

// healthPrefix is left open: a health answer tells nothing, and Envoy's
// gRPC health checks may not carry the token.
const healthPrefix = "/grpc.health.v1.Health/"

// TokenAuth returns interceptors that require "authorization: Bearer
// <token>" in the call's metadata; an empty token requires nothing (nil
// interceptors). A call without it ends Unauthenticated before any handler
// runs.
func TokenAuth(token setting.Secret) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	if token == "" {
		return nil, nil
	}
	want := []byte("Bearer " + token.Reveal())
	check := func(ctx context.Context, method string) error {
		if strings.HasPrefix(method, healthPrefix) {
			return nil
		}
		md, _ := metadata.FromIncomingContext(ctx)
		for _, got := range md.Get("authorization") {
			if subtle.ConstantTimeCompare([]byte(got), want) == 1 {
				return nil
			}
		}
		return status.Error(codes.Unauthenticated, "missing or wrong bearer token")
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := check(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := check(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return h(srv, ss)
	}
	return unary, stream
}

// WithTokenAuth appends the token interceptors to opts (nothing for an
// empty token).
func WithTokenAuth(opts []grpc.ServerOption, token setting.Secret) []grpc.ServerOption {
	u, s := TokenAuth(token)
	if u == nil {
		return opts
	}
	out := append([]grpc.ServerOption(nil), opts...)
	return append(out, grpc.ChainUnaryInterceptor(u), grpc.ChainStreamInterceptor(s))
}
