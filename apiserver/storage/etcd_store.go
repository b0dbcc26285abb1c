package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
)

// etcdStore keeps one resource's objects in etcd, one key per object, with
// the etcd mod revision as the object's resourceVersion.
type etcdStore struct {
	client      *clientv3.Client
	codec       runtime.Codec
	newFunc     func() runtime.Object
	newListFunc func() runtime.Object
	// prefix is the resource's key prefix with a trailing slash.
	prefix string
	// ttl, when positive, is how long an object lives after its last
	// create or update; leases hands out the etcd leases that end it.
	ttl    time.Duration
	leases *leaseReuser
}

// StoreOption adjusts an etcd store.
type StoreOption func(*etcdStore)

// WithTTL makes every object expire ttl (in whole seconds; less than a
// second is no TTL) after its last create or update, as kube-apiserver
// keeps events (--event-ttl): each write attaches an etcd lease, etcd
// deletes the key when the lease ends and watchers see DELETED. Leases are
// shared between writes close together, so an object may live up to a
// minute longer than ttl.
func WithTTL(ttl time.Duration) StoreOption {
	return func(s *etcdStore) { s.ttl = ttl.Truncate(time.Second) }
}

// NewEtcdStore returns the etcd-backed Interface for the resource whose keys
// live under prefix ("/registry/pods"). codec decides the stored encoding;
// the store only needs it to round-trip.
func NewEtcdStore(client *clientv3.Client, codec runtime.Codec, newFunc, newListFunc func() runtime.Object, prefix string, opts ...StoreOption) Interface {
	s := &etcdStore{
		client:      client,
		codec:       codec,
		newFunc:     newFunc,
		newListFunc: newListFunc,
		prefix:      strings.TrimSuffix(prefix, "/") + "/",
	}
	for _, opt := range opts {
		opt(s)
	}
	if s.ttl > 0 {
		s.leases = newLeaseReuser(client.Lease)
	}
	return s
}

// putOptions attaches the lease that ends a written object's life, when
// the store has a TTL; lease is the lease attached (NoLease otherwise).
func (s *etcdStore) putOptions(ctx context.Context) (opts []clientv3.OpOption, lease clientv3.LeaseID, err error) {
	if s.leases == nil {
		return nil, clientv3.NoLease, nil
	}
	lease, err = s.leases.lease(ctx, s.ttl)
	if err != nil {
		return nil, clientv3.NoLease, err
	}
	return []clientv3.OpOption{clientv3.WithLease(lease)}, lease, nil
}

// leaseLost reports whether a write failed because its lease no longer
// exists (revoked outside the API server); the lease is then forgotten so
// that one retry gets a new one.
func (s *etcdStore) leaseLost(err error, lease clientv3.LeaseID) bool {
	if lease == clientv3.NoLease || !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return false
	}
	s.leases.forget(lease)
	return true
}

// objState is what the store knows about one stored object.
type objState struct {
	obj runtime.Object
	// data is the stored encoding; nil when obj came from a cache.
	data []byte
	rev  int64
	// exists is false for a missing key read with ignoreNotFound.
	exists bool
}

func (s *etcdStore) checkKey(key string) error {
	if !strings.HasPrefix(key, s.prefix) || len(key) == len(s.prefix) {
		return fmt.Errorf("key %q is not under the resource prefix %q", key, s.prefix)
	}
	if strings.Contains(key, "/../") || strings.HasSuffix(key, "/..") || strings.Contains(key, "/./") || strings.HasSuffix(key, "/.") {
		return fmt.Errorf("invalid key %q", key)
	}
	return nil
}

// decode turns stored bytes into a new object carrying rev as its
// resourceVersion.
func (s *etcdStore) decode(data []byte, rev int64) (runtime.Object, error) {
	obj, _, err := s.codec.Decode(data, nil, s.newFunc())
	if err != nil {
		return nil, fmt.Errorf("decode stored object: %w", err)
	}
	if err := SetResourceVersion(obj, rev); err != nil {
		return nil, err
	}
	return obj, nil
}

// encode serializes obj as stored: without a resourceVersion, which etcd's
// mod revision replaces.
func (s *etcdStore) encode(obj runtime.Object) ([]byte, error) {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return nil, fmt.Errorf("object has no metadata: %w", err)
	}
	accessor.SetResourceVersion("")
	accessor.SetSelfLink("")
	var buf bytes.Buffer
	if err := s.codec.Encode(obj, &buf); err != nil {
		return nil, fmt.Errorf("encode object: %w", err)
	}
	return buf.Bytes(), nil
}

// ConvertingCodec is a codec whose stored form may hold less than, or other
// than, the object it encoded: custom resources served in a version other
// than their storage version, converted and pruned on the way.
type ConvertingCodec interface {
	StoresConverted() bool
}

// answerWrite puts the written object with its new revision into out: obj
// itself, or for a ConvertingCodec the stored data read back, which is
// what kube-apiserver always answers a write with.
func (s *etcdStore) answerWrite(out, obj runtime.Object, data []byte, rev int64) error {
	if c, ok := s.codec.(ConvertingCodec); ok && c.StoresConverted() {
		stored, err := s.decode(data, rev)
		if err != nil {
			return err
		}
		return SetInto(out, stored)
	}
	if err := SetInto(out, obj); err != nil {
		return err
	}
	return SetResourceVersion(out, rev)
}

// SetResourceVersion sets metadata.resourceVersion to rev (0 clears it).
func SetResourceVersion(obj runtime.Object, rev int64) error {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return fmt.Errorf("object has no metadata: %w", err)
	}
	version := ""
	if rev > 0 {
		version = strconv.FormatInt(rev, 10)
	}
	accessor.SetResourceVersion(version)
	return nil
}

// ParseResourceVersion parses a client-supplied resourceVersion; "" is 0.
func ParseResourceVersion(resourceVersion string) (uint64, error) {
	if resourceVersion == "" {
		return 0, nil
	}
	rev, err := strconv.ParseUint(resourceVersion, 10, 64)
	if err != nil {
		return 0, NewError(ErrCodeInvalidResourceVersion, "", "invalid resource version: %s", resourceVersion)
	}
	return rev, nil
}

// ObjectResourceVersion reads an object's resourceVersion as a revision.
func ObjectResourceVersion(obj runtime.Object) (int64, error) {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return 0, fmt.Errorf("object has no metadata: %w", err)
	}
	rev, err := ParseResourceVersion(accessor.GetResourceVersion())
	return int64(rev), err
}

// SetInto stores src into the out parameter dst, which must point to the
// same type.
func SetInto(dst, src runtime.Object) error {
	if dst == src {
		return nil
	}
	dv, sv := reflect.ValueOf(dst), reflect.ValueOf(src)
	if dv.Kind() != reflect.Pointer || dv.Type() != sv.Type() {
		return fmt.Errorf("cannot store %T into %T", src, dst)
	}
	dv.Elem().Set(sv.Elem())
	return nil
}

// ZeroInto resets the out parameter to its zero value.
func ZeroInto(out runtime.Object) error {
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer {
		return fmt.Errorf("out is %T, not a pointer", out)
	}
	v.Elem().Set(reflect.Zero(v.Elem().Type()))
	return nil
}

func (s *etcdStore) Create(ctx context.Context, key string, obj, out runtime.Object) error {
	if err := s.checkKey(key); err != nil {
		return err
	}
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return fmt.Errorf("object has no metadata: %w", err)
	}
	if accessor.GetResourceVersion() != "" {
		return fmt.Errorf("resourceVersion should not be set on objects to be created")
	}
	data, err := s.encode(obj)
	if err != nil {
		return err
	}
	resp, err := s.putIf(ctx, "create", key, clientv3.Compare(clientv3.ModRevision(key), "=", 0), data)
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return NewError(ErrCodeKeyExists, key, "key exists")
	}
	return s.answerWrite(out, obj, data, resp.Header.Revision)
}

func (s *etcdStore) Get(ctx context.Context, key string, opts GetOptions, out runtime.Object) error {
	if err := s.checkKey(key); err != nil {
		return err
	}
	minRev, err := ParseResourceVersion(opts.ResourceVersion)
	if err != nil {
		return err
	}
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	if err := checkMinimumRevision(minRev, resp.Header.Revision); err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		if opts.IgnoreNotFound {
			return ZeroInto(out)
		}
		return NewError(ErrCodeKeyNotFound, key, "not found")
	}
	obj, err := s.decode(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return SetInto(out, obj)
}

// checkMinimumRevision enforces "at least resourceVersion" reads.
func checkMinimumRevision(minRev uint64, current int64) error {
	if minRev > uint64(current) {
		return tooLargeResourceVersion(minRev, uint64(current))
	}
	return nil
}

func tooLargeResourceVersion(requested, current uint64) error {
	err := NewError(ErrCodeTimeout, "", "Too large resource version: %d, current: %d", requested, current)
	err.CurrentRevision = current
	return err
}

func (s *etcdStore) CurrentResourceVersion(ctx context.Context) (uint64, error) {
	// A linearizable read of one (absent) key costs the same as any other
	// read and carries the store's newest revision in its header.
	resp, err := s.client.Get(ctx, s.prefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("read current revision: %w", err)
	}
	return uint64(resp.Header.Revision), nil
}

// readState reads the current stored state of key.
func (s *etcdStore) readState(ctx context.Context, key string, ignoreNotFound bool) (*objState, error) {
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	var kv *mvccpb.KeyValue
	if len(resp.Kvs) > 0 {
		kv = resp.Kvs[0]
	}
	return s.stateFromKV(key, kv, ignoreNotFound)
}

func (s *etcdStore) stateFromKV(key string, kv *mvccpb.KeyValue, ignoreNotFound bool) (*objState, error) {
	if kv == nil {
		if !ignoreNotFound {
			return nil, NewError(ErrCodeKeyNotFound, key, "not found")
		}
		return &objState{obj: s.newFunc()}, nil
	}
	obj, err := s.decode(kv.Value, kv.ModRevision)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return &objState{obj: obj, data: kv.Value, rev: kv.ModRevision, exists: true}, nil
}

// stateFromCached adopts a cached copy (owned by the store from now on).
func stateFromCached(cached runtime.Object) (*objState, error) {
	rev, err := ObjectResourceVersion(cached)
	if err != nil {
		return nil, err
	}
	return &objState{obj: cached, rev: rev, exists: true}, nil
}

// currentTxnState reads the state a failed compare-and-swap returned in its
// else branch.
func (s *etcdStore) currentTxnState(key string, resp *clientv3.TxnResponse, ignoreNotFound bool) (*objState, error) {
	var kv *mvccpb.KeyValue
	if len(resp.Responses) > 0 {
		if r := resp.Responses[0].GetResponseRange(); r != nil && len(r.Kvs) > 0 {
			kv = r.Kvs[0]
		}
	}
	return s.stateFromKV(key, kv, ignoreNotFound)
}

func (p *Preconditions) check(key string, obj runtime.Object) error {
	if p == nil {
		return nil
	}
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return fmt.Errorf("cannot check preconditions on %T: %w", obj, err)
	}
	if p.UID != nil && *p.UID != accessor.GetUID() {
		return NewError(ErrCodePreconditionFailed, key,
			"Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, accessor.GetUID())
	}
	if p.ResourceVersion != nil && *p.ResourceVersion != accessor.GetResourceVersion() {
		return NewError(ErrCodePreconditionFailed, key,
			"Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v",
			*p.ResourceVersion, accessor.GetResourceVersion())
	}
	return nil
}

func (s *etcdStore) GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, ignoreNotFound bool,
	preconditions *Preconditions, tryUpdate UpdateFunc, cachedExisting runtime.Object) error {
	if err := s.checkKey(key); err != nil {
		return err
	}
	var state *objState
	var err error
	// stateIsCurrent is false while working from the cached copy: any
	// failure then may be due to staleness and earns one fresh read.
	stateIsCurrent := cachedExisting == nil
	if stateIsCurrent {
		state, err = s.readState(ctx, key, ignoreNotFound)
	} else {
		state, err = stateFromCached(cachedExisting)
		if err == nil {
			// Encode before tryUpdate can touch the object, to detect no-op
			// updates without a read.
			state.data, err = s.encodeKeepingVersion(state.obj, state.rev)
		}
	}
	if err != nil {
		return err
	}

	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("update %s: %w", key, err)
		}
		refresh := func(cause error) error {
			return s.refreshStale(ctx, key, ignoreNotFound, &state, &stateIsCurrent, cause)
		}

		if err := preconditions.check(key, state.obj); err != nil {
			if err := refresh(err); err != nil {
				return err
			}
			continue
		}
		updated, err := tryUpdate(state.obj)
		if err != nil {
			if err := refresh(err); err != nil {
				return err
			}
			continue
		}
		data, err := s.encode(updated)
		if err != nil {
			return err
		}
		if state.exists && bytes.Equal(data, state.data) {
			if !stateIsCurrent {
				if err := refresh(nil); err != nil {
					return err
				}
				if !bytes.Equal(data, state.data) {
					continue
				}
			}
			if err := SetInto(out, state.obj); err != nil {
				return err
			}
			return SetResourceVersion(out, state.rev)
		}

		resp, err := s.putIf(ctx, "update", key, clientv3.Compare(clientv3.ModRevision(key), "=", state.rev), data, clientv3.OpGet(key))
		if err != nil {
			return err
		}
		if !resp.Succeeded {
			state, err = s.currentTxnState(key, resp, ignoreNotFound)
			if err != nil {
				return err
			}
			stateIsCurrent = true
			continue
		}
		return s.answerWrite(out, updated, data, resp.Header.Revision)
	}
}

// putIf puts data at key when cmp holds, with the store's lease, and runs
// orElse otherwise; verb names the operation in errors.
func (s *etcdStore) putIf(ctx context.Context, verb, key string, cmp clientv3.Cmp, data []byte, orElse ...clientv3.Op) (*clientv3.TxnResponse, error) {
	for retried := false; ; retried = true {
		putOpts, lease, err := s.putOptions(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", verb, key, err)
		}
		resp, err := s.client.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(data), putOpts...)).Else(orElse...).Commit()
		if err != nil {
			if !retried && s.leaseLost(err, lease) {
				continue
			}
			return nil, fmt.Errorf("%s %s: %w", verb, key, err)
		}
		return resp, nil
	}
}

// refreshStale re-reads the state an update or delete decided on when that
// state was the watch cache's copy: it returns cause when the state was
// already current or etcd holds the same revision (the decision stands),
// and nil when the caller should decide again on the fresh state.
func (s *etcdStore) refreshStale(ctx context.Context, key string, ignoreNotFound bool, state **objState, isCurrent *bool, cause error) error {
	if *isCurrent {
		return cause
	}
	staleRev := (*state).rev
	fresh, err := s.readState(ctx, key, ignoreNotFound)
	if err != nil {
		return err
	}
	*state, *isCurrent = fresh, true
	if fresh.rev == staleRev {
		return cause
	}
	return nil
}

// encodeKeepingVersion encodes obj as stored and then restores its
// resourceVersion.
func (s *etcdStore) encodeKeepingVersion(obj runtime.Object, rev int64) ([]byte, error) {
	data, err := s.encode(obj)
	if err != nil {
		return nil, err
	}
	return data, SetResourceVersion(obj, rev)
}

func (s *etcdStore) Delete(ctx context.Context, key string, out runtime.Object, preconditions *Preconditions,
	validateDeletion ValidateObjectFunc, cachedExisting runtime.Object) error {
	if err := s.checkKey(key); err != nil {
		return err
	}
	var state *objState
	var err error
	stateIsCurrent := cachedExisting == nil
	if stateIsCurrent {
		state, err = s.readState(ctx, key, false)
	} else {
		state, err = stateFromCached(cachedExisting)
	}
	if err != nil {
		return err
	}

	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		refresh := func(cause error) error {
			return s.refreshStale(ctx, key, false, &state, &stateIsCurrent, cause)
		}

		if err := preconditions.check(key, state.obj); err != nil {
			if err := refresh(err); err != nil {
				return err
			}
			continue
		}
		if validateDeletion != nil {
			if err := validateDeletion(ctx, state.obj); err != nil {
				if err := refresh(err); err != nil {
					return err
				}
				continue
			}
		}

		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", state.rev)).
			Then(clientv3.OpDelete(key)).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		if !resp.Succeeded {
			state, err = s.currentTxnState(key, resp, false)
			if err != nil {
				return err
			}
			stateIsCurrent = true
			continue
		}
		// The object as it was when deleted, at the deletion's revision.
		if err := SetInto(out, state.obj); err != nil {
			return err
		}
		return SetResourceVersion(out, resp.Header.Revision)
	}
}
