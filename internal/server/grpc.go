// Package server holds what the authz process's listeners share: the
// server.* configuration, gRPC server options (message size, keepalive,
// TLS/mTLS) and a bounded graceful stop. internal/app runs the servers.
package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// GRPCOptions returns the options both gRPC servers (ext_authz, ALS) use.
// streamWorkers is the number of gRPC stream workers: about the Checks
// Envoy keeps in flight on one replica.
const streamWorkers = 64

func GRPCOptions(c Config) ([]grpc.ServerOption, error) {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(c.MaxRecvMsgBytes),
		// Envoy keeps long-lived HTTP/2 connections and pings them.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// Each Check is a stream: by default gRPC starts a goroutine for
		// it, whose stack then grows again in every handler. Workers that
		// stay keep theirs (a stream finds none idle: a goroutine of its
		// own, as before).
		grpc.NumStreamWorkers(streamWorkers),
	}
	if c.TLS.CertFile == "" {
		return opts, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("server.tls: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.TLS.ClientCAFile != "" {
		pem, err := os.ReadFile(c.TLS.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("server.tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server.tls.client_ca_file %s: no certificates", c.TLS.ClientCAFile)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return append(opts, grpc.Creds(credentials.NewTLS(tc))), nil
}

// GracefulStop drains a gRPC server, forcing it closed after timeout.
func GracefulStop(s *grpc.Server, timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		s.Stop()
		<-done
	}
}
