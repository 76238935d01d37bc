package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Recovery returns interceptors that turn a panic in a unary handler or a
// stream (an access-log stream included) into an Internal error, log it
// with its stack and count it, so one bad message never takes the process
// — and with it ext_authz — down. Envoy then applies failure_mode_allow to
// that one Check.
func Recovery(logger *slog.Logger, panics prometheus.Counter) []grpc.ServerOption {
	recovered := func(method string, v any) error {
		if panics != nil {
			panics.Inc()
		}
		logger.Error("panic in gRPC handler", "method", method, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if v := recover(); v != nil {
				err = recovered(info.FullMethod, v)
			}
		}()
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = recovered(info.FullMethod, v)
			}
		}()
		return h(srv, ss)
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream)}
}
