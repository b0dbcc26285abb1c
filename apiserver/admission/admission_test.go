package admission

import (
	"context"
	"slices"
	"testing"
)

// recorder notes the phase it ran in.
type recorder struct {
	name string
	log  *[]string
}

type mutatingRecorder struct{ recorder }

func (m mutatingRecorder) Admit(context.Context, *Attributes) error {
	*m.log = append(*m.log, "admit:"+m.name)
	return nil
}

type validatingRecorder struct{ recorder }

func (v validatingRecorder) Validate(context.Context, *Attributes) error {
	*v.log = append(*v.log, "validate:"+v.name)
	return nil
}

type bothRecorder struct {
	mutatingRecorder
	validatingRecorder
}

func TestChainRunsMutatorsThenValidatorsInOrder(t *testing.T) {
	var log []string
	chain := Chain{
		{Name: "A", Impl: mutatingRecorder{recorder{"A", &log}}},
		{Name: "B", Impl: validatingRecorder{recorder{"B", &log}}},
		{Name: "C", Impl: bothRecorder{mutatingRecorder{recorder{"C", &log}}, validatingRecorder{recorder{"C", &log}}}},
	}
	a := &Attributes{}
	if err := chain.Admit(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if err := chain.Validate(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	want := []string{"admit:A", "admit:C", "validate:B", "validate:C"}
	if !slices.Equal(log, want) {
		t.Errorf("ran %v, want %v", log, want)
	}
}

func TestChainSelect(t *testing.T) {
	chain := Chain{
		{Name: "NamespaceLifecycle"},
		{Name: "Storage", Builtin: true},
		{Name: "ServiceAccount"},
		{Name: "NodeRestriction", DefaultOff: true},
		{Name: "ResourceQuota"},
	}
	tests := []struct {
		name              string
		enable, disable   []string
		want, wantUnknown []string
		wantErr           bool
	}{
		{name: "defaults", want: []string{"NamespaceLifecycle", "Storage", "ServiceAccount", "ResourceQuota"}},
		{name: "envtest disables ServiceAccount", disable: []string{"ServiceAccount"},
			want: []string{"NamespaceLifecycle", "Storage", "ResourceQuota"}},
		{name: "enable a default-off plugin keeps chain order", enable: []string{"ResourceQuota", "NodeRestriction"},
			want: []string{"NamespaceLifecycle", "Storage", "ServiceAccount", "NodeRestriction", "ResourceQuota"}},
		{name: "builtin steps cannot be disabled", disable: []string{"Storage"},
			want: []string{"NamespaceLifecycle", "Storage", "ServiceAccount", "ResourceQuota"}, wantUnknown: []string{"Storage"}},
		{name: "unknown names are reported", enable: []string{"DefaultStorageClass"}, disable: []string{"AlwaysPullImages"},
			want: []string{"NamespaceLifecycle", "Storage", "ServiceAccount", "ResourceQuota"}, wantUnknown: []string{"DefaultStorageClass", "AlwaysPullImages"}},
		{name: "enabled and disabled", enable: []string{"ServiceAccount"}, disable: []string{"ServiceAccount"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, unknown, err := chain.Select(tt.enable, tt.disable)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			var names []string
			for _, p := range got {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, tt.want) || !slices.Equal(unknown, tt.wantUnknown) {
				t.Errorf("selected %v unknown %v, want %v and %v", names, unknown, tt.want, tt.wantUnknown)
			}
		})
	}
}
