package stream

import (
	"errors"
	"fmt"
)

// Error classes, as written to a dead-lettered record's dlq.error.class header.
const (
	ClassPermanent = "permanent"
	ClassTransient = "transient"
)

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying cannot fix: the record is
// malformed, fails its contract, or names something that does not exist. The
// loop sends the record to its DLQ and moves on. Every other error is
// transient: the loop retries the record after a backoff and never skips it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// Permanentf is Permanent(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error {
	return Permanent(fmt.Errorf(format, args...))
}

// IsPermanent reports whether err, or any error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Class returns err's class name.
func Class(err error) string {
	if IsPermanent(err) {
		return ClassPermanent
	}
	return ClassTransient
}
