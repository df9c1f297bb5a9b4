package herald

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors that stores and services return; the API maps them to HTTP
// statuses (404, 409, 503).
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrUnavailable = errors.New("storage unavailable")
)

// FieldError says which input field is wrong and how to fix it.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// ValidationError collects every field problem of one request, so a client
// can fix them all at once instead of one per round trip.
type ValidationError struct {
	Fields []FieldError
}

// Add records a problem with field.
func (e *ValidationError) Add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
}

// Err returns e when it holds a problem, nil otherwise.
func (e *ValidationError) Err() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	return e
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Detail
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Invalid returns a ValidationError about one field.
func Invalid(field, format string, args ...any) error {
	v := &ValidationError{}
	v.Add(field, format, args...)
	return v
}

// ConflictError is ErrConflict with a reason a person can act on.
type ConflictError struct{ Detail string }

func (e *ConflictError) Error() string { return e.Detail }

// Unwrap lets errors.Is(err, ErrConflict) match.
func (e *ConflictError) Unwrap() error { return ErrConflict }
