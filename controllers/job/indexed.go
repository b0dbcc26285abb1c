package job

import (
	"sort"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// indexed reports whether the Job gives each pod a completion index.
func indexed(job *batchv1.Job) bool {
	return job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion
}

// podIndex is the pod's completion index, or -1.
func podIndex(pod *corev1.Pod) int {
	v, ok := pod.Annotations[batchv1.JobCompletionIndexAnnotation]
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 {
		return -1
	}
	return i
}

// parseIndexes reads a completedIndexes string such as "0-2,5" into a
// set; malformed parts are skipped, the pods will tell again.
func parseIndexes(s string, completions int) map[int]bool {
	set := map[int]bool{}
	for part := range strings.SplitSeq(s, ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		for i := first; i <= last && i < completions; i++ {
			set[i] = true
		}
	}
	return set
}

// formatIndexes writes a set of indexes as upstream's completedIndexes:
// ascending, comma-separated, consecutive runs written "first-last".
func formatIndexes(set map[int]bool) string {
	indexes := make([]int, 0, len(set))
	for i := range set {
		indexes = append(indexes, i)
	}
	sort.Ints(indexes)
	var parts []string
	for start := 0; start < len(indexes); {
		end := start
		for end+1 < len(indexes) && indexes[end+1] == indexes[end]+1 {
			end++
		}
		if end == start {
			parts = append(parts, strconv.Itoa(indexes[start]))
		} else {
			parts = append(parts, strconv.Itoa(indexes[start])+"-"+strconv.Itoa(indexes[end]))
		}
		start = end + 1
	}
	return strings.Join(parts, ",")
}

// pendingIndexes lists, lowest first, up to n indexes below completions
// that have neither succeeded nor a running pod.
func pendingIndexes(completions int, succeeded map[int]bool, active []*corev1.Pod, n int) []int {
	running := map[int]bool{}
	for _, pod := range active {
		running[podIndex(pod)] = true
	}
	var out []int
	for i := 0; i < completions && len(out) < n; i++ {
		if !succeeded[i] && !running[i] {
			out = append(out, i)
		}
	}
	return out
}

// withIndex makes pod the one of completion index i: annotation, label,
// hostname and the JOB_COMPLETION_INDEX variable, as upstream sets them.
func withIndex(pod *corev1.Pod, jobName string, i int) {
	index := strconv.Itoa(i)
	pod.GenerateName = jobName + "-" + index + "-"
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[batchv1.JobCompletionIndexAnnotation] = index
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[batchv1.JobCompletionIndexAnnotation] = index
	if pod.Spec.Hostname == "" {
		pod.Spec.Hostname = jobName + "-" + index
	}
	env := corev1.EnvVar{Name: "JOB_COMPLETION_INDEX", ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + batchv1.JobCompletionIndexAnnotation + "']"},
	}}
	for c := range pod.Spec.InitContainers {
		pod.Spec.InitContainers[c].Env = append(pod.Spec.InitContainers[c].Env, env)
	}
	for c := range pod.Spec.Containers {
		pod.Spec.Containers[c].Env = append(pod.Spec.Containers[c].Env, env)
	}
}
