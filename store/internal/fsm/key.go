package fsm

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Errors of CheckKey, which each front end maps to its own wire form.
var (
	ErrInvalidKey  = errors.New("invalid key")
	ErrKeyTooLarge = errors.New("key too large")
)

// CheckKey is the rule every client-facing key obeys, whatever protocol
// carried it: at most maxBytes bytes of valid UTF-8 without control
// characters. An empty key passes; callers decide what empty means.
func CheckKey(key string, maxBytes int) error {
	if len(key) > maxBytes {
		return fmt.Errorf("%w: key is %d bytes, the limit is %d", ErrKeyTooLarge, len(key), maxBytes)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: key must be valid UTF-8", ErrInvalidKey)
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: key must not contain control characters", ErrInvalidKey)
		}
	}
	return nil
}
