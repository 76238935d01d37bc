package llm

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Every error a call returns matches exactly one of them
// with errors.Is (or context.Canceled when the caller gave up), and all but
// ErrDisabled are carried by an *Error with details. Callers fail open on any
// of them: an error is never a verdict.
var (
	// ErrDisabled: no provider configured; the answer is "unknown".
	ErrDisabled = errors.New("llm: disabled")
	// ErrCircuitOpen: recent calls failed; the call was not attempted.
	ErrCircuitOpen = errors.New("llm: circuit open")
	// ErrTimeout: the caller's deadline passed (attempts, retries).
	ErrTimeout = errors.New("llm: timeout")
	// ErrRateLimited: the provider answered 429 and no retry fitted the deadline.
	ErrRateLimited = errors.New("llm: rate limited")
	// ErrServer: the provider answered 5xx (or 408/409) after the allowed retries.
	ErrServer = errors.New("llm: provider server error")
	// ErrUnavailable: no HTTP answer (connection refused, reset, DNS).
	ErrUnavailable = errors.New("llm: provider unavailable")
	// ErrRejected: the provider refused the request with a non-retryable 4xx
	// (bad key, unknown model, request too large, content filter).
	ErrRejected = errors.New("llm: request rejected")
	// ErrBadResponse: the HTTP answer was not a usable chat completion.
	ErrBadResponse = errors.New("llm: bad provider response")
	// ErrInvalidAnswer: the model's answer does not satisfy the schema.
	ErrInvalidAnswer = errors.New("llm: invalid answer")
	// ErrCanceled: the caller's context was canceled.
	ErrCanceled = errors.New("llm: canceled")
)

// Reason is the closed set of call outcomes used in errors and metric labels.
type Reason string

const (
	ReasonOK            Reason = "ok"
	ReasonDisabled      Reason = "disabled"
	ReasonCircuitOpen   Reason = "circuit_open"
	ReasonTimeout       Reason = "timeout"
	ReasonRateLimited   Reason = "rate_limited"
	ReasonServerError   Reason = "server_error"
	ReasonUnavailable   Reason = "unavailable"
	ReasonRejected      Reason = "rejected"
	ReasonBadResponse   Reason = "bad_response"
	ReasonInvalidAnswer Reason = "invalid_answer"
	ReasonCanceled      Reason = "canceled"
)

func (r Reason) String() string { return string(r) }

func (r Reason) sentinel() error {
	switch r {
	case ReasonDisabled:
		return ErrDisabled
	case ReasonCircuitOpen:
		return ErrCircuitOpen
	case ReasonTimeout:
		return ErrTimeout
	case ReasonRateLimited:
		return ErrRateLimited
	case ReasonServerError:
		return ErrServer
	case ReasonUnavailable:
		return ErrUnavailable
	case ReasonRejected:
		return ErrRejected
	case ReasonBadResponse:
		return ErrBadResponse
	case ReasonInvalidAnswer:
		return ErrInvalidAnswer
	case ReasonCanceled:
		return ErrCanceled
	}
	return nil
}

// ReasonOf maps any error a call returned to its Reason (ReasonOK for nil),
// for callers that label their own metrics.
func ReasonOf(err error) Reason {
	if err == nil {
		return ReasonOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	if errors.Is(err, ErrDisabled) {
		return ReasonDisabled
	}
	return ReasonUnavailable
}

// Error describes a failed call.
type Error struct {
	// Op is the call kind: client_verdict, payload_verdict or narrative.
	Op string
	// Reason classifies the failure; errors.Is(err, ErrXxx) matches it.
	Reason Reason
	// Status is the provider's last HTTP status, 0 when none was received.
	Status int
	// RetryAfter is what the provider asked for on the last 429/503, if anything.
	RetryAfter time.Duration
	// Attempts is the number of HTTP requests made.
	Attempts int
	// Err is the underlying cause (an *AnswerError for invalid answers).
	Err error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("llm %s: %s", e.Op, e.Reason)
	if e.Status != 0 {
		msg += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Attempts > 1 {
		msg += fmt.Sprintf(" after %d attempts", e.Attempts)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap exposes both the Reason's sentinel and the cause.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 2)
	if s := e.Reason.sentinel(); s != nil {
		errs = append(errs, s)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// AnswerError says how a model's answer violates the expected schema.
// errors.Is(err, ErrInvalidAnswer) holds for it.
type AnswerError struct {
	// Field is the JSON field at fault, "" when the answer as a whole is.
	Field string
	// Problem says what is wrong, e.g. "must be in [0, 1], got 7".
	Problem string
	// Excerpt is the start of the answer text, for logs.
	Excerpt string
}

func (e *AnswerError) Error() string {
	if e.Field == "" {
		return "answer: " + e.Problem
	}
	return fmt.Sprintf("answer field %q: %s", e.Field, e.Problem)
}

// Is makes errors.Is(err, ErrInvalidAnswer) true.
func (e *AnswerError) Is(target error) bool { return target == ErrInvalidAnswer }
