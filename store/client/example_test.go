package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// exampleClient is a Client of a throw-away store served by the package's
// tests. A program would connect to the store's Service with its
// certificate instead:
//
//	c, err := client.NewFromFiles([]string{"https://ephemeral-store:8087"}, "tls.crt", "tls.key", "ca.crt")
func exampleClient() (*client.Client, func()) { return client.NewExampleClient() }

func ExampleClient_Put() {
	c, stop := exampleClient()
	defer stop()
	ctx := context.Background()

	res, err := c.Put(ctx, "pools/web-1", []byte("healthy"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("written at revision", res.Revision)
	res, err = c.Put(ctx, "pools/web-1", []byte("draining"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("rewritten at revision", res.Revision, "created at", res.CreateRevision)
	// Output:
	// written at revision 1
	// rewritten at revision 2 created at 1
}

func ExampleClient_Get() {
	c, stop := exampleClient()
	defer stop()
	ctx := context.Background()

	if _, err := c.Put(ctx, "pools/web-1", []byte("healthy")); err != nil {
		log.Fatal(err)
	}
	kv, err := c.Get(ctx, "pools/web-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s = %s (modified at revision %d)\n", kv.Key, kv.Value, kv.ModifyRevision)

	_, err = c.Get(ctx, "pools/web-2")
	fmt.Println("web-2 missing:", errors.Is(err, client.ErrKeyNotFound))
	// Output:
	// pools/web-1 = healthy (modified at revision 1)
	// web-2 missing: true
}

// A compare-and-swap: WithPrevRevision(0) creates a key only if it does
// not exist; WithPrevRevision(rev) replaces it only if nobody wrote it
// since the read that saw rev.
func ExampleWithPrevRevision() {
	c, stop := exampleClient()
	defer stop()
	ctx := context.Background()

	// Take a lock: only one of two contenders creates the key.
	_, err := c.Put(ctx, "locks/job", []byte("worker-a"), client.WithPrevRevision(0))
	fmt.Println("worker-a takes it:", err == nil)
	_, err = c.Put(ctx, "locks/job", []byte("worker-b"), client.WithPrevRevision(0))
	fmt.Println("worker-b refused:", errors.Is(err, client.ErrRevisionMismatch))

	// Read, modify, write: the write applies only on top of what was read.
	kv, err := c.Get(ctx, "locks/job")
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Put(ctx, "locks/job", []byte("worker-a, renewed"), client.WithPrevRevision(kv.ModifyRevision))
	fmt.Println("renewal applies:", err == nil)
	_, err = c.Put(ctx, "locks/job", []byte("late"), client.WithPrevRevision(kv.ModifyRevision))
	fmt.Println("a write on a stale read is refused:", errors.Is(err, client.ErrRevisionMismatch))
	// Output:
	// worker-a takes it: true
	// worker-b refused: true
	// renewal applies: true
	// a write on a stale read is refused: true
}

// A key with a TTL is removed when the TTL runs out, unless written again.
func ExampleWithTTL() {
	c, stop := exampleClient()
	defer stop()
	ctx := context.Background()

	if _, err := c.Put(ctx, "sessions/abc", []byte("alice"), client.WithTTL(200*time.Millisecond)); err != nil {
		log.Fatal(err)
	}
	kv, err := c.Get(ctx, "sessions/abc")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("has a TTL:", kv.TTLRemaining > 0)
	time.Sleep(400 * time.Millisecond)
	_, err = c.Get(ctx, "sessions/abc")
	fmt.Println("expired:", errors.Is(err, client.ErrKeyNotFound))
	// Output:
	// has a TTL: true
	// expired: true
}

// ListThenWatch: the keys of a prefix at one revision, then every change
// after it, to keep a local copy exactly in step with the store. Resume
// keeps the watch going across broken streams and endpoints.
func ExampleClient_ListThenWatch() {
	c, stop := exampleClient()
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	for _, k := range []string{"pools/web-1", "pools/web-2"} {
		if _, err := c.Put(ctx, k, []byte("healthy")); err != nil {
			log.Fatal(err)
		}
	}
	snap, w, err := c.ListThenWatch(ctx, "pools/", client.Resume{})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	local := map[string]string{}
	for _, kv := range snap.Items {
		local[kv.Key] = string(kv.Value)
	}
	fmt.Println("snapshot at revision", snap.Revision, "holds", len(local), "keys")

	// Changes made after the snapshot, by anyone.
	if _, err := c.Put(ctx, "pools/web-3", []byte("starting")); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Delete(ctx, "pools/web-1"); err != nil {
		log.Fatal(err)
	}
	for range 2 {
		ev, err := w.Next()
		if err != nil {
			log.Fatal(err)
		}
		switch ev.Type {
		case api.EventPut:
			local[ev.Key] = string(ev.Value)
		default: // api.EventDelete, api.EventExpire
			delete(local, ev.Key)
		}
		fmt.Println(ev.Revision, ev.Type, ev.Key)
	}
	fmt.Println("now:", local)
	// Output:
	// snapshot at revision 2 holds 2 keys
	// 3 put pools/web-3
	// 4 delete pools/web-1
	// now: map[pools/web-2:healthy pools/web-3:starting]
}
