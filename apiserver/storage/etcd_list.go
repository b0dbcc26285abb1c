package storage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"reflect"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// maxListChunk bounds one etcd read while a selector filters a paged list.
const maxListChunk = 10000

// Messages kube-apiserver returns for lists at compacted revisions.
const (
	listTooOldMessage       = "The resourceVersion for the provided list is too old."
	continueTooOldMessage   = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."
	inconsistentContinueMsg = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
)

// continueToken is the wire format of metadata.continue shared with
// kube-apiserver, so tokens stay valid across both implementations.
type continueToken struct {
	APIVersion      string `json:"v"`
	ResourceVersion int64  `json:"rv"`
	StartKey        string `json:"start"`
}

// EncodeContinue builds the token that resumes a list under keyPrefix at key
// (inclusive) and revision rev (-1: the newest revision).
func EncodeContinue(key, keyPrefix string, rev int64) (string, error) {
	start, ok := strings.CutPrefix(key, keyPrefix)
	if !ok {
		return "", fmt.Errorf("continue key %q is not under %q", key, keyPrefix)
	}
	data, err := json.Marshal(continueToken{APIVersion: "meta.k8s.io/v1", ResourceVersion: rev, StartKey: start})
	if err != nil {
		return "", fmt.Errorf("encode continue token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(data), nil
}

// DecodeContinue returns the full key a token resumes at and its revision.
func DecodeContinue(token, keyPrefix string) (key string, rev int64, err error) {
	invalid := func(format string, args ...any) error {
		return NewError(ErrCodeInvalidContinue, keyPrefix, "invalid continue token: "+format, args...)
	}
	data, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", 0, invalid("%v", err)
	}
	var t continueToken
	if err := json.Unmarshal(data, &t); err != nil {
		return "", 0, invalid("%v", err)
	}
	if t.APIVersion != "meta.k8s.io/v1" {
		return "", 0, invalid("server does not recognize this encoded version %q", t.APIVersion)
	}
	if t.ResourceVersion == 0 {
		return "", 0, invalid("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
	}
	if t.StartKey == "" {
		return "", 0, invalid("encoded start key empty (version meta.k8s.io/v1)")
	}
	// The start key must not climb out of the listed prefix.
	start := t.StartKey
	if !strings.HasPrefix(start, "/") {
		start = "/" + start
	}
	if path.Clean(start) != start {
		return "", 0, invalid("%s", t.StartKey)
	}
	return keyPrefix + start[1:], t.ResourceVersion, nil
}

// listPlan is where and at which revision a list reads.
type listPlan struct {
	// rev is the revision to read at; 0 reads the newest and checks minRev.
	rev         int64
	minRev      uint64
	continueKey string
}

func planList(keyPrefix string, opts ListOptions) (listPlan, error) {
	if opts.Recursive && opts.Predicate.Continue != "" {
		if opts.ResourceVersion != "" && opts.ResourceVersion != "0" {
			return listPlan{}, NewError(ErrCodeInvalidContinue, keyPrefix, "specifying resource version is not allowed when using continue")
		}
		key, rev, err := DecodeContinue(opts.Predicate.Continue, keyPrefix)
		if err != nil {
			return listPlan{}, err
		}
		plan := listPlan{continueKey: key}
		if rev > 0 {
			plan.rev = rev
		}
		return plan, nil
	}
	rv, err := ParseResourceVersion(opts.ResourceVersion)
	if err != nil {
		return listPlan{}, err
	}
	switch opts.ResourceVersionMatch {
	case metav1.ResourceVersionMatchExact:
		return listPlan{rev: int64(rv)}, nil
	case metav1.ResourceVersionMatchNotOlderThan:
		return listPlan{minRev: rv}, nil
	case "":
		// Legacy: a paged list with a resourceVersion reads exactly there.
		if opts.Recursive && opts.Predicate.Limit > 0 && rv > 0 {
			return listPlan{rev: int64(rv)}, nil
		}
		return listPlan{minRev: rv}, nil
	default:
		return listPlan{}, NewError(ErrCodeInvalidResourceVersion, keyPrefix, "unknown ResourceVersionMatch value: %v", opts.ResourceVersionMatch)
	}
}

// listItems appends decoded objects to a typed list's Items slice.
type listItems struct {
	items    reflect.Value
	elemType reflect.Type
	// byValue is true for []Foo (the usual generated lists).
	byValue bool
}

func newListItems(listObj runtime.Object) (*listItems, error) {
	ptr, err := meta.GetItemsPtr(listObj)
	if err != nil {
		return nil, fmt.Errorf("list object %T: %w", listObj, err)
	}
	v := reflect.ValueOf(ptr)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Slice {
		return nil, fmt.Errorf("list object %T: items are not a slice", listObj)
	}
	items := v.Elem()
	elemType := items.Type().Elem()
	items.Set(reflect.MakeSlice(items.Type(), 0, 0))
	return &listItems{items: items, elemType: elemType, byValue: elemType.Kind() == reflect.Struct}, nil
}

func (l *listItems) len() int { return l.items.Len() }

func (l *listItems) grow(n int) {
	if l.items.Cap()-l.items.Len() < n {
		grown := reflect.MakeSlice(l.items.Type(), l.items.Len(), l.items.Len()+n)
		reflect.Copy(grown, l.items)
		l.items.Set(grown)
	}
}

// add appends obj (a pointer to the element type, or any object for
// pointer and interface items).
func (l *listItems) add(obj runtime.Object) error {
	v := reflect.ValueOf(obj)
	switch {
	case l.byValue:
		if v.Type() != reflect.PointerTo(l.elemType) {
			return fmt.Errorf("cannot add %T to a list of %v", obj, l.elemType)
		}
		l.items.Set(reflect.Append(l.items, v.Elem()))
	case v.Type().AssignableTo(l.elemType):
		l.items.Set(reflect.Append(l.items, v))
	default:
		return fmt.Errorf("cannot add %T to a list of %v", obj, l.elemType)
	}
	return nil
}

// setListMeta fills the list's resourceVersion, continue and remaining count.
func setListMeta(listObj runtime.Object, rev int64, continueValue string, remaining *int64) error {
	accessor, err := meta.ListAccessor(listObj)
	if err != nil {
		return fmt.Errorf("list object %T: %w", listObj, err)
	}
	accessor.SetResourceVersion(fmt.Sprint(rev))
	accessor.SetContinue(continueValue)
	accessor.SetRemainingItemCount(remaining)
	return nil
}

func (s *etcdStore) listPrefix(key string, recursive bool) (string, error) {
	if recursive && !strings.HasSuffix(key, "/") {
		key += "/"
	}
	if !strings.HasPrefix(key, s.prefix) {
		return "", fmt.Errorf("key %q is not under the resource prefix %q", key, s.prefix)
	}
	return key, nil
}

func (s *etcdStore) GetList(ctx context.Context, key string, opts ListOptions, listObj runtime.Object) error {
	keyPrefix, err := s.listPrefix(key, opts.Recursive)
	if err != nil {
		return err
	}
	plan, err := planList(keyPrefix, opts)
	if err != nil {
		return err
	}
	items, err := newListItems(listObj)
	if err != nil {
		return err
	}
	pred := opts.Predicate
	paging := pred.Limit > 0 && opts.Recursive

	startKey := keyPrefix
	if plan.continueKey != "" {
		startKey = plan.continueKey
	}
	readOpts := []clientv3.OpOption{}
	if opts.Recursive {
		readOpts = append(readOpts, clientv3.WithRange(clientv3.GetPrefixRangeEnd(keyPrefix)))
	}
	chunk := pred.Limit
	rev := plan.rev
	var lastKey string
	var count int64
	hasMore := false
	for {
		chunkOpts := readOpts
		if paging {
			chunkOpts = append(chunkOpts, clientv3.WithLimit(chunk))
		}
		if rev > 0 {
			chunkOpts = append(chunkOpts, clientv3.WithRev(rev))
		}
		resp, err := s.client.Get(ctx, startKey, chunkOpts...)
		if err != nil {
			return s.listReadError(ctx, err, rev, plan.continueKey, keyPrefix)
		}
		if rev == 0 {
			if err := checkMinimumRevision(plan.minRev, resp.Header.Revision); err != nil {
				return err
			}
			rev = resp.Header.Revision
		}
		count = resp.Count
		chunkHasMore := int64(len(resp.Kvs)) < resp.Count
		if pred.Empty() {
			items.grow(len(resp.Kvs))
		}
		limitReached := false
		for i, kv := range resp.Kvs {
			if paging && int64(items.len()) >= pred.Limit {
				limitReached = true
				break
			}
			lastKey = string(kv.Key)
			if err := s.appendListItem(items, kv, pred); err != nil {
				return fmt.Errorf("%s: %w", kv.Key, err)
			}
			resp.Kvs[i] = nil
		}
		hasMore = chunkHasMore || limitReached
		if !chunkHasMore || limitReached || !paging || int64(items.len()) >= pred.Limit {
			break
		}
		startKey = lastKey + "\x00"
		// A selector dropped items: read more at a time.
		chunk = min(chunk*2, maxListChunk)
	}

	var continueValue string
	var remaining *int64
	if hasMore && paging {
		continueValue, err = EncodeContinue(lastKey+"\x00", keyPrefix, rev)
		if err != nil {
			return err
		}
		// etcd counts keys, not matches: only an unfiltered list knows how
		// many items remain.
		if pred.Empty() {
			left := count - pred.Limit
			remaining = &left
		}
	}
	return setListMeta(listObj, rev, continueValue, remaining)
}

func (s *etcdStore) appendListItem(items *listItems, kv *mvccpb.KeyValue, pred SelectionPredicate) error {
	obj, err := s.decode(kv.Value, kv.ModRevision)
	if err != nil {
		return err
	}
	if !pred.Empty() {
		ok, err := pred.Matches(obj)
		if err != nil || !ok {
			return err
		}
	}
	return items.add(obj)
}

func (s *etcdStore) listReadError(ctx context.Context, err error, rev int64, continueKey, keyPrefix string) error {
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		if continueKey == "" {
			return NewError(ErrCodeResourceVersionTooOld, keyPrefix, listTooOldMessage)
		}
		token, encodeErr := EncodeContinue(continueKey, keyPrefix, -1)
		if encodeErr != nil {
			return NewError(ErrCodeResourceVersionTooOld, keyPrefix, continueTooOldMessage)
		}
		tooOld := NewError(ErrCodeResourceVersionTooOld, keyPrefix, inconsistentContinueMsg)
		tooOld.Continue = token
		return tooOld
	case errors.Is(err, rpctypes.ErrFutureRev):
		current, currentErr := s.CurrentResourceVersion(ctx)
		if currentErr != nil {
			current = 0
		}
		return tooLargeResourceVersion(uint64(rev), current)
	default:
		return fmt.Errorf("list %s: %w", keyPrefix, err)
	}
}
