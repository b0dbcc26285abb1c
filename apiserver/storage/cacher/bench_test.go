package cacher_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"

	"tower.dev/tower/apiserver/storage"
	"tower.dev/tower/apiserver/storage/cacher"
	"tower.dev/tower/apiserver/storage/storagetest"
)

func benchFixture(b *testing.B, objects int) (storage.Interface, storage.Interface, context.Context) {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	client := storagetest.StartEtcd(b)
	etcd := storagetest.NewStore(client)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < objects; i += 16 {
				name := fmt.Sprintf("cm-%05d", i)
				if err := etcd.Create(ctx, storagetest.Key("ns", name), storagetest.ConfigMap("ns", name, nil), &corev1.ConfigMap{}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	cache, err := cacher.New(ctx, etcd, client, storagetest.Prefix, storagetest.NewConfigMap, storagetest.NewConfigMapList)
	if err != nil {
		b.Fatal(err)
	}
	// A consistent list waits until the cache has caught up.
	if err := cache.GetList(ctx, storagetest.Prefix+"/", storage.ListOptions{Recursive: true}, &corev1.ConfigMapList{}); err != nil {
		b.Fatal(err)
	}
	return etcd, cache, ctx
}

func BenchmarkList10k(b *testing.B) {
	etcd, cache, ctx := benchFixture(b, 10000)
	for _, tc := range []struct {
		name  string
		store storage.Interface
		rv    string
	}{
		{"etcd", etcd, ""},
		{"cache-consistent", cache, ""},
		{"cache-rv0", cache, "0"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				list := &corev1.ConfigMapList{}
				if err := tc.store.GetList(ctx, storagetest.Prefix+"/", storage.ListOptions{Recursive: true, ResourceVersion: tc.rv}, list); err != nil {
					b.Fatal(err)
				}
				if len(list.Items) != 10000 {
					b.Fatalf("%d items", len(list.Items))
				}
			}
		})
	}
}

// BenchmarkWatchFanout1000 measures one write reaching 1000 watchers, each
// of which encodes the event as an HTTP watch stream would.
func BenchmarkWatchFanout1000(b *testing.B) {
	_, cache, ctx := benchFixture(b, 0)
	codec := storagetest.Codec()
	const watchers = 1000
	var received sync.WaitGroup
	for range watchers {
		w, err := cache.Watch(ctx, storagetest.Prefix+"/", storage.ListOptions{Recursive: true, ResourceVersion: "0"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(w.Stop)
		go func(w watch.Interface) {
			var buf bytes.Buffer
			for e := range w.ResultChan() {
				buf.Reset()
				if err := codec.Encode(e.Object, &buf); err != nil {
					b.Error(err)
				}
				received.Done()
			}
		}(w)
	}
	i := 0
	for b.Loop() {
		received.Add(watchers)
		name := fmt.Sprintf("cm-%d", i)
		i++
		if err := cache.Create(ctx, storagetest.Key("ns", name), storagetest.ConfigMap("ns", name, nil), &corev1.ConfigMap{}); err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() { received.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatal("watchers did not all receive the event")
		}
	}
}
