package systems

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// StoreRESPName labels the store's results measured over its RESP port.
const StoreRESPName = "ephemeral-store (RESP)"

// RESPView is the same running cluster as s, but its clients read and
// write over each node's Redis-protocol port instead of the HTTP/2 API
// (GET, SET); nil when s was started without RESP.
func (s *Store) RESPView() System {
	if !s.RESP {
		return nil
	}
	return storeRESP{s}
}

type storeRESP struct{ *Store }

func (v storeRESP) Name() string { return StoreRESPName }

// Client reads over the first listed node's RESP port (a go-redis client
// has one address, and the workloads never fail over) and writes through
// go-redis's Redis Cluster client, seeded with every node: the store's
// CLUSTER SLOTS names the leader as the owner of every slot, so SETs go to
// the leader directly instead of being forwarded by a follower, as a
// cluster-aware application's would. The client connects to the leader
// here, before any workload's clock starts.
func (v storeRESP) Client(nodes []int) (Client, error) {
	if len(nodes) == 0 {
		return nil, errors.New("store RESP client: no node")
	}
	cfg, err := tlsConfig(v.certDir)
	if err != nil {
		return nil, fmt.Errorf("store RESP client TLS: %w", err)
	}
	c := newRESPClient(v.resp[nodes[0]], cfg)
	c.withClusterWriter(v.resp, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.connectWriter(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// respClient is one go-redis connection to a store node's RESP port. The
// port's read mode belongs to the connection (READONLY: stale local reads;
// READWRITE, the default: linearizable), so the client switches it when a
// Get asks for the other mode and sets it again on every new connection.
type respClient struct {
	c *redis.Client
	// w sends the writes: c itself, or a cluster client that sends them
	// to the slots' owner, the leader.
	w       redis.Cmdable
	cluster *redis.ClusterClient
	// stale is the mode the live connection is in, or will be put in by
	// OnConnect when go-redis dials again.
	stale *atomic.Bool
}

// The RESP clients' bounds: generous, so a slow commit shows as latency,
// not as an error.
const (
	respDialTimeout = 5 * time.Second
	respIOTimeout   = 10 * time.Second
)

func newRESPClient(addr string, cfg *tls.Config) respClient {
	stale := new(atomic.Bool)
	c := redis.NewClient(&redis.Options{
		Addr:      addr,
		TLSConfig: cfg,
		// RESP2: the port answers HELLO 3 with -NOPROTO.
		Protocol:     2,
		PoolSize:     1,
		DialTimeout:  respDialTimeout,
		ReadTimeout:  respIOTimeout,
		WriteTimeout: respIOTimeout,
		// No CLIENT SETINFO round trips on connect, as for Redis.
		DisableIdentity: true,
		OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			if !stale.Load() {
				return nil // a new connection starts in READWRITE
			}
			if err := cn.ReadOnly(ctx).Err(); err != nil {
				return fmt.Errorf("READONLY on connect: %w", err)
			}
			return nil
		},
	})
	return respClient{c: c, w: c, stale: stale}
}

// withClusterWriter sends c's writes through a Redis Cluster client seeded
// with seeds (one connection per node it talks to, as c has).
func (c *respClient) withClusterWriter(seeds []string, cfg *tls.Config) {
	c.cluster = redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:     seeds,
		TLSConfig: cfg,
		// As newRESPClient's: RESP2, one connection per node, no
		// CLIENT SETINFO.
		Protocol:        2,
		PoolSize:        1,
		DialTimeout:     respDialTimeout,
		ReadTimeout:     respIOTimeout,
		WriteTimeout:    respIOTimeout,
		DisableIdentity: true,
	})
	c.w = c.cluster
}

// connectWriter loads the slots and connects to their owner: a PING to
// every master (the leader).
func (c respClient) connectWriter(ctx context.Context) error {
	if c.cluster == nil {
		return nil
	}
	for {
		err := c.cluster.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.Ping(ctx).Err() })
		if err == nil {
			return nil
		}
		// -CLUSTERDOWN while an election settles: ask again until ctx ends.
		c.cluster.ReloadState(ctx)
		select {
		case <-ctx.Done():
			return fmt.Errorf("store RESP cluster client: CLUSTER SLOTS and a PING to the leader: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Put is SET key value through the writer: +OK once a majority has the
// write. A write does not depend on the connection's read mode, so none
// is sent.
func (c respClient) Put(ctx context.Context, key string, value []byte) error {
	if err := c.w.Set(ctx, key, value, 0).Err(); err != nil {
		return fmt.Errorf("store RESP SET %q (%d-byte value): %w", key, len(value), err)
	}
	return nil
}

// PutBatch pipelines one SET per key in a single round trip; the node
// answers them in order, each once committed.
func (c respClient) PutBatch(ctx context.Context, keys []string, value []byte) error {
	if len(keys) == 0 {
		return nil
	}
	pipe := c.w.Pipeline()
	for _, k := range keys {
		pipe.Set(ctx, k, value, 0)
	}
	cmds, err := pipe.Exec(ctx)
	if err == nil {
		return nil
	}
	// Name the first SET that failed: the error alone does not say which.
	for i, cmd := range cmds {
		if cerr := cmd.Err(); cerr != nil {
			return fmt.Errorf("store RESP pipeline of %d SETs: SET %q (%d-byte value): %w", len(keys), keys[i], len(value), cerr)
		}
	}
	return fmt.Errorf("store RESP pipeline of %d SETs: %w", len(keys), err)
}

// Get sends READONLY or READWRITE first only when the mode changes, so a
// workload of one mode pays one GET round trip per request.
func (c respClient) Get(ctx context.Context, key string, stale bool) ([]byte, error) {
	if c.stale.Load() != stale {
		// The new mode first: if go-redis has to dial again to send the
		// command, OnConnect already puts the new connection in it.
		c.stale.Store(stale)
		var err error
		if stale {
			err = c.c.ReadOnly(ctx).Err()
		} else {
			err = c.c.ReadWrite(ctx).Err()
		}
		if err != nil {
			// Not switched: the next Get tries again.
			c.stale.Store(!stale)
			return nil, fmt.Errorf("store RESP read mode (stale %v): %w", stale, err)
		}
	}
	b, err := c.c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store RESP get %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store RESP get %q: %w", key, err)
	}
	return b, nil
}

func (c respClient) Close() error {
	err := c.c.Close()
	if c.cluster != nil {
		err = errors.Join(err, c.cluster.Close())
	}
	return err
}
