package cronjob

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNext(t *testing.T) {
	// 2026-11-24 is a Tuesday.
	from := time.Date(2026, 11, 24, 7, 30, 15, 0, time.UTC)
	cases := []struct {
		spec string
		want time.Time
	}{
		{"* * * * *", time.Date(2026, 11, 24, 7, 31, 0, 0, time.UTC)},
		{"*/15 * * * *", time.Date(2026, 11, 24, 7, 45, 0, 0, time.UTC)},
		{"0 9-17 * * mon-fri", time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)},
		{"@daily", time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)},
		{"@hourly", time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)},
		{"0 0 1 jan *", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"0 0 * * 7", time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)},
		{"0 0 13 * 5", time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)},
		{"5,10 8 * * *", time.Date(2026, 11, 24, 8, 5, 0, 0, time.UTC)},
		{"0 0 30 2 *", time.Time{}},
	}
	for _, c := range cases {
		s, err := ParseSchedule(c.spec)
		if err != nil {
			t.Fatalf("%q: %v", c.spec, err)
		}
		if got := s.Next(from); !got.Equal(c.want) {
			t.Errorf("%q: Next = %v, want %v", c.spec, got, c.want)
		}
	}
}

func TestParseScheduleRejects(t *testing.T) {
	for _, spec := range []string{"", "* * * *", "60 * * * *", "* * 0 * *", "*/0 * * * *", "5-1 * * * *", "* * * foo *"} {
		if _, err := ParseSchedule(spec); err == nil {
			t.Errorf("%q: no error", spec)
		}
	}
}

func TestMostRecent(t *testing.T) {
	s, err := ParseSchedule("*/10 * * * *")
	if err != nil {
		t.Fatal(err)
	}
	after := time.Date(2026, 11, 24, 7, 0, 0, 0, time.UTC)
	now := time.Date(2026, 11, 24, 7, 35, 0, 0, time.UTC)
	last, next := MostRecent(s, after, now)
	if !last.Equal(time.Date(2026, 11, 24, 7, 30, 0, 0, time.UTC)) || !next.Equal(time.Date(2026, 11, 24, 7, 40, 0, 0, time.UTC)) {
		t.Fatalf("MostRecent = %v, %v", last, next)
	}
	if last, _ := MostRecent(s, now, now.Add(time.Minute)); !last.IsZero() {
		t.Fatalf("no run due, got %v", last)
	}
}

func TestJobFor(t *testing.T) {
	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "report", Namespace: "ns", UID: "uid"}}
	scheduled := time.Date(2026, 11, 24, 7, 30, 0, 0, time.UTC)
	job := JobFor(cj, scheduled)
	if want := "report-29925090"; job.Name != want {
		t.Errorf("name = %q, want %q", job.Name, want)
	}
	if job.Annotations[scheduledTimestampAnnotation] != "2026-11-24T07:30:00Z" {
		t.Errorf("scheduled annotation = %q", job.Annotations[scheduledTimestampAnnotation])
	}
	if len(job.OwnerReferences) != 1 || job.OwnerReferences[0].Kind != "CronJob" {
		t.Errorf("owner references = %+v", job.OwnerReferences)
	}
}
