package metalog

import "errors"

// Classified errors of a change that cannot apply.
var (
	ErrExists   = errors.New("metalog: already exists")
	ErrNotFound = errors.New("metalog: not found")
	ErrStale    = errors.New("metalog: stale expectation")
	ErrInvalid  = errors.New("metalog: invalid change")
)
