package client

import "testing"

// The few assertions the tests need, so that the module has no test
// dependency to pass on.

// noErr stops the test on err.
func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// okErr reports err and goes on.
func okErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Error(err)
	}
}

// wantErr stops the test when err is nil.
func wantErr(t testing.TB, err error, msg ...any) {
	t.Helper()
	if err == nil {
		t.Fatal(append([]any{"want an error: "}, msg...)...)
	}
}

// check reports a condition that does not hold, with a message formatted
// from msgAndArgs (a format, then its arguments).
func check(t testing.TB, cond bool, msgAndArgs ...any) {
	t.Helper()
	if cond {
		return
	}
	if len(msgAndArgs) == 0 {
		t.Error("condition does not hold")
		return
	}
	format, _ := msgAndArgs[0].(string)
	t.Errorf(format, msgAndArgs[1:]...)
}

// equal reports got != want.
func equal[T comparable](t testing.TB, want, got T, msg ...any) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v %v", got, want, msg)
	}
}
