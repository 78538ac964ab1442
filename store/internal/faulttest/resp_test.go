package faulttest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/kvhistory"
)

// respClient is a Redis client library (go-redis, one connection, no
// retries: a resent SET would blur what the history records) on node i's
// RESP port, closed when the test ends. Reads are linearizable (the
// connection never sends READONLY).
func (c *Cluster) respClient(i int, timeout time.Duration) *redis.Client {
	c.t.Helper()
	cert := func(f string) string { return filepath.Join(c.bin.CertDir, f) }
	tlsCfg, err := client.TLSConfigFromFiles(cert(User+".crt"), cert(User+".key"), cert("rootCA.crt"))
	if err != nil {
		c.t.Fatalf("RESP client TLS: %v", err)
	}
	opts := &redis.Options{
		Addr: c.Nodes[i].RESPAddr, TLSConfig: tlsCfg, Protocol: 2, PoolSize: 1, MaxRetries: -1,
		DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout, DisableIdentity: true,
	}
	if c.lab != nil {
		// As for the HTTP clients: dialled from the hub namespace, and the
		// server certificate names localhost, not the lab's addresses.
		tlsCfg.ServerName = "localhost"
		opts.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := c.lab.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return tls.Client(raw, tlsCfg), nil
		}
	}
	rc := redis.NewClient(opts)
	c.t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// respOutcome sorts a RESP command's error the way kvhistory sorts the
// HTTP client's: nil, an answer a correct store never gives to these
// commands (rejected), a command that changed nothing (not applied: it
// was never sent, or the node said it wrote nothing), or an unknown
// outcome.
type respOutcome int

const (
	respOK respOutcome = iota
	respRejected
	respNotApplied
	respUnknown
)

func classifyRESP(err error) respOutcome {
	if err == nil {
		return respOK
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		switch {
		case strings.HasPrefix(msg, "TRYAGAIN"):
			// A read not served, or a node shutting down that wrote nothing.
			return respNotApplied
		case strings.HasPrefix(msg, "NOQUORUM"), strings.HasPrefix(msg, "ERR internal error"):
			return respUnknown
		default:
			// ERR (syntax, keys), NOAUTH, NOPERM, OOM: the workload's
			// commands are valid, the user may write, there is no quota.
			return respRejected
		}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return respNotApplied // no connection: the command never left
	}
	return respUnknown // a cut or timed-out connection: it may have run
}

// respGet is get over RESP.
func (w *workload) respGet(id, node int, rc *redis.Client, key string) bool {
	call := w.h.Now()
	v, err := rc.Get(context.Background(), key).Result()
	ret := w.h.Now()
	var out kvhistory.Output
	switch {
	case err == nil:
		out = kvhistory.Output{Found: true, Value: v}
	case errors.Is(err, redis.Nil):
	default:
		w.readErrors.Add(1)
		if classifyRESP(err) == respRejected {
			w.unexpectedAnswer("RESP GET %s via n%d: %v", key, node, err)
		}
		return false
	}
	w.reads.Add(1)
	w.h.Add(porcupine.Operation{ClientId: id, Input: kvhistory.Input{Op: kvhistory.Get, Key: key}, Call: call, Output: out, Return: ret,
		Metadata: opMeta{Node: node, RESP: true}})
	return true
}

// respPut is put over RESP (SET key value). A SET's answer carries no
// revision: see lostWrites.
func (w *workload) respPut(id, node int, rc *redis.Client, key, value string) bool {
	call := w.h.Now()
	err := rc.Set(context.Background(), key, value, 0).Err()
	ret := w.h.Now()
	return w.recordRESPWrite(porcupine.Operation{ClientId: id, Input: kvhistory.Input{Op: kvhistory.Put, Key: key, Value: value}, Call: call, Return: ret,
		Metadata: opMeta{Node: node, RESP: true}}, kvhistory.Output{}, err)
}

// respDelete is delete over RESP (DEL key: 1 when it removed the key).
func (w *workload) respDelete(id, node int, rc *redis.Client, key string) bool {
	call := w.h.Now()
	n, err := rc.Del(context.Background(), key).Result()
	ret := w.h.Now()
	return w.recordRESPWrite(porcupine.Operation{ClientId: id, Input: kvhistory.Input{Op: kvhistory.Delete, Key: key}, Call: call, Return: ret,
		Metadata: opMeta{Node: node, RESP: true}}, kvhistory.Output{Found: n == 1}, err)
}

func (w *workload) recordRESPWrite(op porcupine.Operation, out kvhistory.Output, err error) bool {
	in := op.Input.(kvhistory.Input)
	switch classifyRESP(err) {
	case respOK:
		op.Output = out
		w.acked.Add(1)
	case respRejected:
		w.unexpectedAnswer("RESP %s %s via n%d: %v", in.Op, in.Key, op.Metadata.(opMeta).Node, err)
		return false
	case respNotApplied:
		return false
	case respUnknown:
		op.Output, op.Return = kvhistory.Output{Unknown: true}, kvhistory.EndOfTime
		op.Metadata = opMeta{Node: op.Metadata.(opMeta).Node, RESP: true, Err: err.Error()}
		w.unknown.Add(1)
	}
	w.h.Add(op)
	return err == nil
}

// redisReply is an error line as go-redis returns it.
type redisReply string

func (e redisReply) Error() string { return string(e) }
func (redisReply) RedisError()     {}

func TestClassifyRESP(t *testing.T) {
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	readErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	tests := []struct {
		err  error
		want respOutcome
	}{
		{nil, respOK},
		{redisReply("TRYAGAIN this node is shutting down and wrote nothing; send the command to another node"), respNotApplied},
		{redisReply("TRYAGAIN linearizable read not served (timed out waiting for the leader)"), respNotApplied},
		{redisReply("NOQUORUM the write may or may not have been applied (no leader)"), respUnknown},
		{redisReply("ERR internal error: the write may or may not have been applied; read the key"), respUnknown},
		{redisReply("ERR syntax error"), respRejected},
		{redisReply(`NOPERM user "u" may not write "k"`), respRejected},
		{redisReply("OOM quota exceeded; nothing was written"), respRejected},
		{fmt.Errorf("redis: %w", dialErr), respNotApplied},
		{readErr, respUnknown},
		{io.EOF, respUnknown},
		{context.DeadlineExceeded, respUnknown},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, classifyRESP(tc.err), "%v", tc.err)
	}
}
