package printers

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
)

// Placeholders kubectl users know from kube-apiserver's tables.
const (
	none    = "<none>"
	unset   = "<unset>"
	unknown = "<unknown>"
	invalid = "<invalid>"
)

// listPreviewLength is how many entries a cell lists before summarising the
// rest as "+ N more...".
const listPreviewLength = 3

func objectMetaDoc(field string) string {
	return metav1.ObjectMeta{}.SwaggerDoc()[field]
}

func nameColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: objectMetaDoc("name")}
}

func ageColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: objectMetaDoc("creationTimestamp")}
}

func containersColumn(priority int32) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Containers", Type: "string", Priority: priority, Description: "Names of each container in the template."}
}

func imagesColumn(priority int32) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Images", Type: "string", Priority: priority, Description: "Images referenced by each container in the template."}
}

// age renders how long ago t was, as kubectl's AGE columns do.
func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return unknown
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func microAge(t metav1.MicroTime, now time.Time) string {
	if t.IsZero() {
		return unknown
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// containerCells lists a pod template's container names and images, comma
// separated, for the wide CONTAINERS and IMAGES columns.
func containerCells(containers []corev1.Container) (names, images string) {
	nameList := make([]string, len(containers))
	imageList := make([]string, len(containers))
	for i, c := range containers {
		nameList[i] = c.Name
		imageList[i] = c.Image
	}
	return strings.Join(nameList, ","), strings.Join(imageList, ",")
}

// preview joins the first listPreviewLength entries and says how many were
// left out.
type preview struct {
	shown []string
	total int
}

func (p *preview) add(entry string) {
	p.total++
	if len(p.shown) < listPreviewLength {
		p.shown = append(p.shown, entry)
	}
}

func (p *preview) String() string {
	joined := strings.Join(p.shown, ",")
	if p.total > len(p.shown) {
		return fmt.Sprintf("%s + %d more...", joined, p.total-len(p.shown))
	}
	return joined
}

func boolPointerCell(b *bool) string {
	switch {
	case b == nil:
		return unset
	case *b:
		return "True"
	default:
		return "False"
	}
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

func orUnset(s string) string {
	if s == "" {
		return unset
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return unknown
	}
	return s
}

func int32Value(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}
