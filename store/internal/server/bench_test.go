package server_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

// BenchmarkSingleNode measures GET and PUT through the real TLS server (one
// node, HTTP/2, client certificate), with the Go client.
func BenchmarkSingleNode(b *testing.B) {
	c := testcluster.New(b, 1)
	c.WaitReady(readyTimeout)
	cl := c.Client(testcluster.UserAll)
	ctx := context.Background()
	value := make([]byte, 256)
	if _, err := cl.Put(ctx, "bench/get", value); err != nil {
		b.Fatal(err)
	}
	b.Run("PUT-256B", func(b *testing.B) {
		b.SetBytes(int64(len(value)))
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				if _, err := cl.Put(ctx, fmt.Sprintf("bench/k%d", i%1024), value); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("GET-linearizable", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := cl.Get(ctx, "bench/get"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("GET-stale", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := cl.Get(ctx, "bench/get", client.Stale()); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
