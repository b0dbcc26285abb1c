package registry

import (
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestJobCreate(t *testing.T) {
	jobs := resourceFor(t, "batch", "jobs")
	job := newJob("pi")
	if errs := create(t, jobs, job); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	tl := job.Spec.Template.Labels
	checks := []struct {
		name      string
		got, want any
	}{
		{"completions", *job.Spec.Completions, int32(1)},
		{"parallelism", *job.Spec.Parallelism, int32(1)},
		{"backoffLimit", *job.Spec.BackoffLimit, int32(6)},
		{"completionMode", *job.Spec.CompletionMode, batchv1.NonIndexedCompletion},
		{"suspend", *job.Spec.Suspend, false},
		{"podReplacementPolicy", *job.Spec.PodReplacementPolicy, batchv1.TerminatingOrFailed},
		{"restartPolicy kept", job.Spec.Template.Spec.RestartPolicy, corev1.RestartPolicyNever},
		{"controller-uid label", tl["batch.kubernetes.io/controller-uid"], "uid-1"},
		{"job-name label", tl["batch.kubernetes.io/job-name"], "pi"},
		{"legacy controller-uid label", tl["controller-uid"], "uid-1"},
		{"legacy job-name label", tl["job-name"], "pi"},
		{"selector", job.Spec.Selector.MatchLabels["batch.kubernetes.io/controller-uid"], "uid-1"},
		{"selector size", len(job.Spec.Selector.MatchLabels), 1},
		{"generation", job.Generation, int64(1)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	jobs.Strategy.Default(job)
	if job.Labels["batch.kubernetes.io/job-name"] != "pi" {
		t.Errorf("job labels not taken from the template on read: %v", job.Labels)
	}
	_, f, _ := jobs.Strategy.GetAttrs(job)
	if f["status.successful"] != "0" {
		t.Errorf("job fields = %v", f)
	}
}

func TestJobValidation(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*batchv1.Job)
		want   []string
	}{
		{"default restartPolicy is rejected", func(j *batchv1.Job) { j.Spec.Template.Spec.RestartPolicy = "" },
			[]string{"FieldValueNotSupported spec.template.spec.restartPolicy"}},
		{"selector without manualSelector", func(j *batchv1.Job) {
			j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
			j.Spec.Template.Labels = map[string]string{"app": "x"}
		}, []string{"FieldValueInvalid spec.selector"}},
		{"manual selector mismatch", func(j *batchv1.Job) {
			j.Spec.ManualSelector = ptr.To(true)
			j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
		}, []string{"FieldValueInvalid spec.template.metadata.labels"}},
		{"manual selector missing", func(j *batchv1.Job) { j.Spec.ManualSelector = ptr.To(true) },
			[]string{"FieldValueRequired spec.selector"}},
		{"wrong job-name label", func(j *batchv1.Job) { j.Spec.Template.Labels = map[string]string{"job-name": "other"} },
			[]string{"FieldValueInvalid spec.template.metadata.labels[job-name]"}},
		{"indexed without completions", func(j *batchv1.Job) {
			j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
			j.Spec.Parallelism = ptr.To[int32](2)
		}, []string{"FieldValueRequired spec.completions"}},
		{"negative backoff", func(j *batchv1.Job) { j.Spec.BackoffLimit = ptr.To[int32](-1) }, []string{"FieldValueInvalid spec.backoffLimit"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			job := newJob("pi")
			c.mutate(job)
			expectErrors(t, create(t, resourceFor(t, "batch", "jobs"), job), c.want...)
		})
	}
}

func TestJobUpdate(t *testing.T) {
	jobs := resourceFor(t, "batch", "jobs")
	cases := []struct {
		name      string
		suspended bool
		mutate    func(*batchv1.Job)
		want      []string
		wantGen   int64
	}{
		{"parallelism", false, func(j *batchv1.Job) { j.Spec.Parallelism = ptr.To[int32](3) }, nil, 2},
		{"suspend", false, func(j *batchv1.Job) { j.Spec.Suspend = ptr.To(true) }, nil, 2},
		{"completions", false, func(j *batchv1.Job) { j.Spec.Completions = ptr.To[int32](3) }, []string{"FieldValueInvalid spec.completions"}, 2},
		{"template", false, func(j *batchv1.Job) { j.Spec.Template.Spec.Containers[0].Image = "x" }, []string{"FieldValueInvalid spec.template"}, 2},
		{"selector", false, func(j *batchv1.Job) { j.Spec.Selector.MatchLabels["extra"] = "x" },
			[]string{"FieldValueInvalid spec.selector", "FieldValueInvalid spec.selector", "FieldValueInvalid spec.template.metadata.labels"}, 2},
		{"suspended job node selector", true, func(j *batchv1.Job) { j.Spec.Template.Spec.NodeSelector = map[string]string{"zone": "a"} }, nil, 2},
		{"suspended job image", true, func(j *batchv1.Job) { j.Spec.Template.Spec.Containers[0].Image = "x" }, []string{"FieldValueInvalid spec.template"}, 2},
		{"status ignored", false, func(j *batchv1.Job) { j.Status.Succeeded = 1 }, nil, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			job := newJob("pi")
			job.Spec.Suspend = ptr.To(c.suspended)
			old := stored(t, jobs, job)
			j := old.DeepCopy()
			c.mutate(j)
			expectErrors(t, update(t, jobs, j, old), c.want...)
			if j.Generation != c.wantGen {
				t.Errorf("generation = %d, want %d", j.Generation, c.wantGen)
			}
			if j.Status.Succeeded != 0 {
				t.Error("status changed through main resource")
			}
		})
	}
	t.Run("status subresource keeps spec", func(t *testing.T) {
		old := stored(t, jobs, newJob("pi"))
		j := old.DeepCopy()
		j.Spec.Parallelism = ptr.To[int32](9)
		j.Status.Succeeded = 1
		expectErrors(t, updateStatus(t, jobs, j, old))
		if *j.Spec.Parallelism != 1 || j.Status.Succeeded != 1 {
			t.Errorf("parallelism=%d succeeded=%d", *j.Spec.Parallelism, j.Status.Succeeded)
		}
	})
}

func newCronJob(name, schedule string) *batchv1.CronJob {
	tmpl := podTemplate(nil)
	tmpl.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	return &batchv1.CronJob{ObjectMeta: objectMeta(name), Spec: batchv1.CronJobSpec{
		Schedule:    schedule,
		JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}},
	}}
}

func TestCronJob(t *testing.T) {
	cronjobs := resourceFor(t, "batch", "cronjobs")
	cj := newCronJob("nightly", "0 3 * * MON-FRI")
	if errs := create(t, cronjobs, cj); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	if cj.Spec.ConcurrencyPolicy != batchv1.AllowConcurrent || *cj.Spec.Suspend || *cj.Spec.SuccessfulJobsHistoryLimit != 3 ||
		*cj.Spec.FailedJobsHistoryLimit != 1 || cj.Generation != 1 || cj.Spec.JobTemplate.Spec.BackoffLimit != nil ||
		cj.Spec.JobTemplate.Spec.Template.Spec.DNSPolicy != corev1.DNSClusterFirst {
		t.Errorf("cronjob defaults: %+v", cj.Spec)
	}
	cases := []struct {
		name string
		cj   *batchv1.CronJob
		want []string
	}{
		{"every", newCronJob("a", "@every 5m"), nil},
		{"hourly", newCronJob("a", "@hourly"), nil},
		{"steps and lists", newCronJob("a", "*/15 1,2,3 1-10/2 * sun"), nil},
		{"missing schedule", newCronJob("a", ""), []string{"FieldValueRequired spec.schedule"}},
		{"four fields", newCronJob("a", "* * * *"), []string{"FieldValueInvalid spec.schedule"}},
		{"minute out of range", newCronJob("a", "61 * * * *"), []string{"FieldValueInvalid spec.schedule"}},
		{"TZ in schedule", newCronJob("a", "TZ=UTC 0 * * * *"), []string{"FieldValueInvalid spec.schedule"}},
		{"name too long", newCronJob("a1234567890123456789012345678901234567890123456789012", "@daily"), []string{"FieldValueInvalid metadata.name"}},
		{"always restart", func() *batchv1.CronJob {
			c := newCronJob("a", "@daily")
			c.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
			return c
		}(), []string{"FieldValueNotSupported spec.jobTemplate.spec.template.spec.restartPolicy"}},
		{"bad time zone", func() *batchv1.CronJob {
			c := newCronJob("a", "@daily")
			c.Spec.TimeZone = ptr.To("Mars/Olympus")
			return c
		}(), []string{"FieldValueInvalid spec.timeZone"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expectErrors(t, create(t, cronjobs, c.cj), c.want...)
		})
	}
	t.Run("generation", func(t *testing.T) {
		old := stored(t, cronjobs, newCronJob("nightly", "@daily"))
		changed := old.DeepCopy()
		changed.Spec.Schedule = "@hourly"
		expectErrors(t, update(t, cronjobs, changed, old))
		if changed.Generation != 2 {
			t.Errorf("generation = %d", changed.Generation)
		}
	})
}
