package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sigil-project/sigil/runtime/registries"
	"github.com/sigil-project/sigil/signing/policy"
)

// SignatureValidationFailed starts the message of a pull or create that the
// trust policy refused; kubelet shows the message as the pod's reason.
const SignatureValidationFailed = "SignatureValidationFailed"

// quietCall reports whether kubelet polls method constantly: such calls
// are logged at Debug only. A switch, not a package-level map, so that no
// sigil process builds it at start-up.
func quietCall(method string) bool {
	switch method {
	case "Version", "Status", "ListPodSandbox", "ListContainers",
		"PodSandboxStatus", "ContainerStatus", "ListImages", "ImageStatus",
		"ImageFsInfo", "ListContainerStats", "ListPodSandboxStats",
		"ContainerStats", "PodSandboxStats", "ExecSync", "RuntimeConfig":
		return true
	}
	return false
}

// UnaryInterceptor logs every call once, at its end, and turns its error
// into a gRPC status (toGRPC): handlers only return wrapped errors.
func (s *Server) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := path.Base(info.FullMethod)
	start := time.Now()
	resp, err := handler(ctx, req)
	s.logCall(ctx, method, start, err)
	if err != nil {
		return nil, toGRPC(err)
	}
	return resp, nil
}

// StreamInterceptor does the same for the streaming list calls.
func (s *Server) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	method := path.Base(info.FullMethod)
	start := time.Now()
	err := handler(srv, ss)
	s.logCall(ss.Context(), method, start, err)
	if err != nil {
		return toGRPC(err)
	}
	return nil
}

func (s *Server) logCall(ctx context.Context, method string, start time.Time, err error) {
	level := slog.LevelInfo
	if quietCall(method) {
		level = slog.LevelDebug
	}
	if err != nil {
		level = slog.LevelWarn
		if errdefs.IsNotFound(err) || status.Code(err) == codes.NotFound {
			level = slog.LevelDebug // kubelet asks about what it removed
		}
		s.log.Log(ctx, level, "CRI call failed", "method", method, "duration", time.Since(start), "error", err)
		return
	}
	s.log.Log(ctx, level, "CRI call", "method", method, "duration", time.Since(start))
}

// toGRPC translates an error to a gRPC status once, at the edge: errdefs
// classes to their codes, a trust-policy refusal to a message that starts
// with SignatureValidationFailed and the reason code.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var rej *policy.RejectedError
	if errors.As(err, &rej) {
		return status.Error(codes.PermissionDenied, signatureMessage(rej))
	}
	var code codes.Code
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errdefs.IsNotFound(err):
		code = codes.NotFound
	case errdefs.IsAlreadyExists(err):
		code = codes.AlreadyExists
	case errdefs.IsInvalidArgument(err):
		code = codes.InvalidArgument
	case errdefs.IsFailedPrecondition(err), errors.Is(err, registries.ErrBlocked):
		code = codes.FailedPrecondition
	case errdefs.IsPermissionDenied(err):
		code = codes.PermissionDenied
	case errdefs.IsUnauthorized(err):
		code = codes.Unauthenticated
	case errdefs.IsUnavailable(err):
		code = codes.Unavailable
	case errdefs.IsNotImplemented(err):
		code = codes.Unimplemented
	default:
		code = codes.Unknown
	}
	return status.Error(code, err.Error())
}

// signatureMessage is "SignatureValidationFailed: <CODE>: <detail>", the
// detail naming the image and the policy scope.
func signatureMessage(rej *policy.RejectedError) string {
	scope := rej.Scope
	if scope == "" {
		scope = "default"
	}
	detail := strings.TrimSpace(rej.Detail)
	return fmt.Sprintf("%s: %s: image %s refused by trust policy scope %q: %s", SignatureValidationFailed, rej.Code, rej.Image, scope, detail)
}
