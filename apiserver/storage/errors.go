package storage

import (
	"errors"
	"fmt"
)

// ErrorCode classifies storage failures; the HTTP layer maps each to the
// metav1.Status reason kube-apiserver uses.
type ErrorCode int

const (
	// ErrCodeKeyNotFound: NotFound 404.
	ErrCodeKeyNotFound ErrorCode = iota + 1
	// ErrCodeKeyExists: AlreadyExists 409.
	ErrCodeKeyExists
	// ErrCodeConflict: the object changed since the resourceVersion the
	// client sent; Conflict 409.
	ErrCodeConflict
	// ErrCodePreconditionFailed: a uid/resourceVersion precondition did not
	// hold; Conflict 409.
	ErrCodePreconditionFailed
	// ErrCodeResourceVersionTooOld: the revision was compacted; Gone 410 /
	// Expired for continue tokens.
	ErrCodeResourceVersionTooOld
	// ErrCodeInvalidContinue: a continue token that cannot be parsed;
	// BadRequest 400.
	ErrCodeInvalidContinue
	// ErrCodeInvalidResourceVersion: a resourceVersion that is not a number;
	// BadRequest 400.
	ErrCodeInvalidResourceVersion
	// ErrCodeTimeout: waiting for a fresh enough state took too long;
	// Timeout 504.
	ErrCodeTimeout
)

// Error is a classified storage failure.
type Error struct {
	Code ErrorCode
	Key  string
	// Message is shown to the client as the Status message's detail.
	Message string
	// Continue, on ErrCodeResourceVersionTooOld for a paged list, is a token
	// that resumes the list at the newest revision (inconsistently); the
	// HTTP layer puts it in the 410 Status's metadata.continue, as
	// kube-apiserver does.
	Continue string
	// CurrentRevision, on ErrCodeTimeout for a too large resourceVersion, is
	// the newest revision the store had.
	CurrentRevision uint64
}

func (e *Error) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("%s: %s", e.Key, e.Message)
	}
	return fmt.Sprintf("%s: storage error %d", e.Key, e.Code)
}

// NewError builds an Error.
func NewError(code ErrorCode, key, format string, args ...any) *Error {
	return &Error{Code: code, Key: key, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the ErrorCode in err's chain, or 0.
func CodeOf(err error) ErrorCode {
	var se *Error
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// IsNotFound reports a missing key.
func IsNotFound(err error) bool { return CodeOf(err) == ErrCodeKeyNotFound }

// IsExists reports a create of an existing key.
func IsExists(err error) bool { return CodeOf(err) == ErrCodeKeyExists }

// IsConflict reports a lost compare-and-swap against a client resourceVersion.
func IsConflict(err error) bool { return CodeOf(err) == ErrCodeConflict }

// IsTooOld reports a compacted revision.
func IsTooOld(err error) bool { return CodeOf(err) == ErrCodeResourceVersionTooOld }

// IsTimeout reports a wait for a fresh enough state that gave up.
func IsTimeout(err error) bool { return CodeOf(err) == ErrCodeTimeout }
