package systems

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ephemeral-store/ephemeral-store/bench/internal/proc"
)

// Redis is one redis-server with TLS only (client certificates required),
// no persistence: the in-memory reference point without replication.
type Redis struct {
	Bin     string // redis-server
	Dir     string // config, working directory and log
	CertDir string

	addr    string
	p       *proc.Proc
	tls     *tls.Config
	version string
}

func (r *Redis) Name() string     { return "redis" }
func (r *Redis) Version() string  { return r.version }
func (r *Redis) Replicated() bool { return false }
func (r *Redis) Nodes() int       { return 1 }

func (r *Redis) Start(ctx context.Context) error {
	if out, err := exec.Command(r.Bin, "--version").CombinedOutput(); err == nil {
		r.version = strings.TrimSpace(string(out))
	}
	cfg, err := tlsConfig(r.CertDir)
	if err != nil {
		return fmt.Errorf("redis client TLS: %w", err)
	}
	r.tls = cfg
	ports, err := proc.ReservePorts(1)
	if err != nil {
		return err
	}
	r.addr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	work := filepath.Join(r.Dir, "redis")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	cert := func(f string) string { return filepath.Join(r.CertDir, f) }
	conf := strings.Join([]string{
		"bind 127.0.0.1",
		"port 0",
		fmt.Sprintf("tls-port %d", ports[0]),
		"tls-cert-file " + cert("server.crt"),
		"tls-key-file " + cert("server.key"),
		"tls-ca-cert-file " + cert("rootCA.crt"),
		"tls-auth-clients yes",
		`save ""`,
		"appendonly no",
		"daemonize no",
		"dir " + work,
		`logfile ""`,
		"loglevel warning",
	}, "\n") + "\n"
	confPath := filepath.Join(work, "redis.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("redis config: %w", err)
	}
	r.p, err = proc.Start("redis", filepath.Join(r.Dir, "redis.log"), r.Bin, confPath)
	if err != nil {
		return err
	}
	return WaitHealthy(ctx, r)
}

func (r *Redis) Stop() error {
	if r.p == nil {
		return nil
	}
	return r.p.Kill()
}

// Leader is the only node, while it runs.
func (r *Redis) Leader(ctx context.Context) int {
	if r.Ready(ctx, 0) {
		return 0
	}
	return -1
}

func (r *Redis) Kill(int) error    { return errors.New("redis: no failover to measure with one node") }
func (r *Redis) Restart(int) error { return errors.New("redis: no failover to measure with one node") }

func (r *Redis) Ready(ctx context.Context, _ int) bool {
	if !r.p.Running() {
		return false
	}
	c := r.newClient()
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return c.Ping(cctx).Err() == nil
}

func (r *Redis) PIDs() []int {
	if r.p.Running() {
		return []int{r.p.PID()}
	}
	return nil
}

func (r *Redis) DataBytes() (int64, error) { return 0, nil }

// newClient holds a single connection: PoolSize 1.
func (r *Redis) newClient() *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:         r.addr,
		TLSConfig:    r.tls.Clone(),
		PoolSize:     1,
		DialTimeout:  5 * time.Second,
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		// Keep go-redis from sending CLIENT SETINFO (answered, but noise).
		DisableIdentity: true,
	})
}

func (r *Redis) Client([]int) (Client, error) { return redisClient{r.newClient()}, nil }

type redisClient struct{ c *redis.Client }

func (c redisClient) Put(ctx context.Context, key string, value []byte) error {
	return c.c.Set(ctx, key, value, 0).Err()
}

// PutBatch pipelines one SET per key in a single round trip.
func (c redisClient) PutBatch(ctx context.Context, keys []string, value []byte) error {
	pipe := c.c.Pipeline()
	for _, k := range keys {
		pipe.Set(ctx, k, value, 0)
	}
	_, err := pipe.Exec(ctx)
	return err
}

func (c redisClient) Get(ctx context.Context, key string, _ bool) ([]byte, error) {
	b, err := c.c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis get %q: %w", key, ErrNotFound)
	}
	return b, err
}

func (c redisClient) Close() error { return c.c.Close() }
