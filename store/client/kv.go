package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// KeyValue is a key with its value and revisions.
type KeyValue struct {
	Key   string
	Value []byte
	// CreateRevision is the store revision that created the key;
	// ModifyRevision the one that last wrote it (pass it to WithPrevRevision
	// for a compare-and-swap).
	CreateRevision int64
	ModifyRevision int64
	// Revision is the store revision the read saw.
	Revision int64
	// TTLRemaining is the time left before the key expires (whole seconds,
	// rounded up, for Get; milliseconds for List), zero for a key without TTL.
	TTLRemaining time.Duration
}

// ListPage is one page of a listing, in key order: api.ListPage with
// the items as KeyValues.
type ListPage struct {
	// Revision is the store revision the page was read at.
	Revision int64
	Items    []KeyValue
	// More is true when keys follow; pass Next to WithAfter for them.
	More bool
	Next string
}

// GetOption changes a Get.
type GetOption interface{ applyGet(*readOptions) }

// ListOption changes a List or ListAll.
type ListOption interface{ applyList(*listOptions) }

// PutOption changes a Put.
type PutOption interface{ applyPut(*writeOptions) }

// DeleteOption changes a Delete.
type DeleteOption interface{ applyDelete(*writeOptions) }

// ReadOption applies to Get, List and ListAll.
type ReadOption interface {
	GetOption
	ListOption
}

// WriteOption applies to Put and Delete.
type WriteOption interface {
	PutOption
	DeleteOption
}

type readOptions struct{ stale bool }

type listOptions struct {
	readOptions
	limit    int
	after    string
	keysOnly bool
}

type writeOptions struct {
	ttl  time.Duration
	prev *int64
}

type staleOption struct{}

func (staleOption) applyGet(o *readOptions)  { o.stale = true }
func (staleOption) applyList(o *listOptions) { o.stale = true }

// Stale reads the local copy of whichever node answers, without the
// leader round trip: fast, possibly behind, and available without quorum.
func Stale() ReadOption { return staleOption{} }

type listFunc func(*listOptions)

func (f listFunc) applyList(o *listOptions) { f(o) }

// WithLimit sets the page size of List (the server's default is 100, its
// maximum 1000); for ListAll, the size of each page fetched.
func WithLimit(n int) ListOption { return listFunc(func(o *listOptions) { o.limit = n }) }

// WithAfter starts a List after key (exclusive): the Next of the previous
// page.
func WithAfter(key string) ListOption { return listFunc(func(o *listOptions) { o.after = key }) }

// KeysOnly lists keys and revisions without values.
func KeysOnly() ListOption { return listFunc(func(o *listOptions) { o.keysOnly = true }) }

type putFunc func(*writeOptions)

func (f putFunc) applyPut(o *writeOptions) { f(o) }

// WithTTL makes the key expire after d (the leader's clock decides).
func WithTTL(d time.Duration) PutOption { return putFunc(func(o *writeOptions) { o.ttl = d }) }

type prevRevision int64

func (p prevRevision) applyPut(o *writeOptions)    { v := int64(p); o.prev = &v }
func (p prevRevision) applyDelete(o *writeOptions) { v := int64(p); o.prev = &v }

// WithPrevRevision makes a Put or Delete a compare-and-swap: it applies
// only if the key's ModifyRevision is rev, and fails with
// ErrRevisionMismatch otherwise. rev 0 means "create only": the Put fails
// if the key exists.
func WithPrevRevision(rev int64) WriteOption { return prevRevision(rev) }

// WithDeletePrevRevision is WithPrevRevision for Delete.
func WithDeletePrevRevision(rev int64) DeleteOption { return prevRevision(rev) }

// Get reads key. By default the read is linearizable: it reflects every
// write acknowledged before it started. A missing key is ErrKeyNotFound.
func (c *Client) Get(ctx context.Context, key string, opts ...GetOption) (*KeyValue, error) {
	var o readOptions
	for _, opt := range opts {
		opt.applyGet(&o)
	}
	path, err := kvPath(key)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if o.stale {
		q.Set("stale", "true")
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.do(ctx, call{method: http.MethodGet, path: path, query: q})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	value, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("client: get %q: reading the value: %w", key, err)
	}
	h := resp.Header
	kv := &KeyValue{
		Key:            key,
		Value:          value,
		Revision:       headerInt(h, "ES-Revision"),
		CreateRevision: headerInt(h, "ES-Create-Revision"),
		ModifyRevision: headerInt(h, "ES-Modify-Revision"),
		TTLRemaining:   time.Duration(headerInt(h, "ES-TTL-Remaining")) * time.Second,
	}
	return kv, nil
}

func headerInt(h http.Header, name string) int64 {
	n, _ := strconv.ParseInt(h.Get(name), 10, 64)
	return n
}

// Put writes value under key and returns the new revision once the write
// is committed by a majority.
func (c *Client) Put(ctx context.Context, key string, value []byte, opts ...PutOption) (*api.PutResult, error) {
	var o writeOptions
	for _, opt := range opts {
		opt.applyPut(&o)
	}
	path, err := kvPath(key)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	switch {
	case o.ttl < 0:
		return nil, fmt.Errorf("client: put %q: negative TTL %s", key, o.ttl)
	case o.ttl > 0:
		q.Set("ttl", o.ttl.String())
	}
	if o.prev != nil {
		q.Set("prev_revision", strconv.FormatInt(*o.prev, 10))
	}
	if value == nil {
		value = []byte{}
	}
	var res api.PutResult
	if err := c.doJSON(ctx, call{method: http.MethodPut, path: path, query: q, body: value}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Delete removes key. A missing key is ErrKeyNotFound.
func (c *Client) Delete(ctx context.Context, key string, opts ...DeleteOption) (*api.DeleteResult, error) {
	var o writeOptions
	for _, opt := range opts {
		opt.applyDelete(&o)
	}
	path, err := kvPath(key)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if o.prev != nil {
		q.Set("prev_revision", strconv.FormatInt(*o.prev, 10))
	}
	var res api.DeleteResult
	if err := c.doJSON(ctx, call{method: http.MethodDelete, path: path, query: q}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// List returns one page of the keys starting with prefix ("" for every
// key), in key order. Follow page.Next with WithAfter, or use ListAll.
func (c *Client) List(ctx context.Context, prefix string, opts ...ListOption) (*ListPage, error) {
	var o listOptions
	for _, opt := range opts {
		opt.applyList(&o)
	}
	return c.list(ctx, prefix, o)
}

func (c *Client) list(ctx context.Context, prefix string, o listOptions) (*ListPage, error) {
	q := url.Values{"prefix": {prefix}}
	if o.limit < 0 {
		return nil, fmt.Errorf("client: list %q: negative limit %d", prefix, o.limit)
	}
	if o.limit > 0 {
		q.Set("limit", strconv.Itoa(o.limit))
	}
	if o.after != "" {
		q.Set("after", o.after)
	}
	if o.keysOnly {
		q.Set("keys_only", "true")
	}
	if o.stale {
		q.Set("stale", "true")
	}
	var wire api.ListPage
	if err := c.doJSON(ctx, call{method: http.MethodGet, path: "/v1/kv/", query: q}, &wire); err != nil {
		return nil, err
	}
	page := &ListPage{Revision: wire.Revision, More: wire.More, Next: wire.Next, Items: make([]KeyValue, len(wire.Items))}
	for i, it := range wire.Items {
		page.Items[i] = KeyValue{
			Key: it.Key, Value: it.Value, Revision: wire.Revision,
			CreateRevision: it.CreateRevision, ModifyRevision: it.ModifyRevision,
			TTLRemaining: time.Duration(it.TTLRemainingMS) * time.Millisecond,
		}
	}
	return page, nil
}

// ListAll returns every key under prefix, following pages. Each page is
// its own read, so the result is not one snapshot: a key written during the
// listing may or may not be in it. WithAfter is ignored; WithLimit sets the
// page size.
func (c *Client) ListAll(ctx context.Context, prefix string, opts ...ListOption) ([]KeyValue, error) {
	var o listOptions
	for _, opt := range opts {
		opt.applyList(&o)
	}
	o.after = ""
	var all []KeyValue
	for {
		page, err := c.list(ctx, prefix, o)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if !page.More {
			return all, nil
		}
		if page.Next == "" || page.Next <= o.after {
			return nil, fmt.Errorf("client: list %q: the server's next key %q does not advance past %q", prefix, page.Next, o.after)
		}
		o.after = page.Next
	}
}

// Cluster returns the status of the node that answers.
func (c *Client) Cluster(ctx context.Context) (*api.ClusterStatus, error) {
	var st api.ClusterStatus
	if err := c.doJSON(ctx, call{method: http.MethodGet, path: "/v1/cluster"}, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Reform forces the answering node's leaderless cluster to re-form empty:
// the operator's way out when voters stay silent because they are dead.
// confirm must be the cluster_id the node reports. Every key is lost.
func (c *Client) Reform(ctx context.Context, confirm string) (*api.ClusterStatus, error) {
	var st api.ClusterStatus
	q := url.Values{"confirm": {confirm}}
	if err := c.doJSON(ctx, call{method: http.MethodPost, path: "/v1/cluster/reform", query: q, body: []byte{}}, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// doJSON runs r within the call timeout and decodes a JSON answer into v.
func (c *Client) doJSON(ctx context.Context, r call, v any) error {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("client: %s %s: decoding the answer: %w", r.method, r.path, err)
	}
	return nil
}
