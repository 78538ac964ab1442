package client

import (
	"crypto/tls"
)

// NewExampleClient starts the package's fake store (fake_test.go) behind
// mutual TLS, with the tests' throw-away CA (pki_test.go, in memory), and
// returns a Client of it and a function that stops it: the examples run
// against it (they have no *testing.T, so an error panics).
func NewExampleClient() (*Client, func()) {
	p := newPKI(func(err error) { panic(err) })
	f := newFakeStore()
	srv := p.serveTLS(f)
	c, err := New(Config{Endpoints: []string{srv.URL}, TLS: &tls.Config{
		RootCAs: p.pool, Certificates: []tls.Certificate{p.issue("myuser", false)},
	}})
	if err != nil {
		panic(err)
	}
	return c, func() {
		c.Close()
		close(f.stop) // ends the watch handlers, which srv.Close waits for
		srv.Close()
	}
}
