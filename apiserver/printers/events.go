package printers

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// core/v1 and events.k8s.io/v1 Events are one resource stored once, so both
// print with the same columns; eventView is what those columns need from
// either version.
type eventView struct {
	name                string
	eventType, reason   string
	message             string
	regarding           corev1.ObjectReference
	source              corev1.EventSource
	reportingController string
	reportingInstance   string
	firstTimestamp      metav1.Time
	lastTimestamp       metav1.Time
	eventTime           metav1.MicroTime
	count               int32
	series              *corev1.EventSeries
}

func eventColumns() []metav1.TableColumnDefinition {
	doc := corev1.Event{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		{Name: "Last Seen", Type: "string", Description: doc["lastTimestamp"]},
		{Name: "Type", Type: "string", Description: doc["type"]},
		{Name: "Reason", Type: "string", Description: doc["reason"]},
		{Name: "Object", Type: "string", Description: doc["involvedObject"]},
		{Name: "Subobject", Type: "string", Priority: 1, Description: corev1.ObjectReference{}.SwaggerDoc()["fieldPath"]},
		{Name: "Source", Type: "string", Priority: 1, Description: doc["source"]},
		{Name: "Message", Type: "string", Description: doc["message"]},
		{Name: "First Seen", Type: "string", Priority: 1, Description: doc["firstTimestamp"]},
		{Name: "Count", Type: "string", Priority: 1, Description: doc["count"]},
		{Name: "Name", Type: "string", Priority: 1, Format: "name", Description: objectMetaDoc("name")},
	}
}

func coreEventCells(event *corev1.Event, now time.Time) []any {
	return eventCells(eventView{
		name:                event.Name,
		eventType:           event.Type,
		reason:              event.Reason,
		message:             event.Message,
		regarding:           event.InvolvedObject,
		source:              event.Source,
		reportingController: event.ReportingController,
		reportingInstance:   event.ReportingInstance,
		firstTimestamp:      event.FirstTimestamp,
		lastTimestamp:       event.LastTimestamp,
		eventTime:           event.EventTime,
		count:               event.Count,
		series:              event.Series,
	}, now)
}

func eventsV1EventCells(event *eventsv1.Event, now time.Time) []any {
	view := eventView{
		name:                event.Name,
		eventType:           event.Type,
		reason:              event.Reason,
		message:             event.Note,
		regarding:           event.Regarding,
		source:              event.DeprecatedSource,
		reportingController: event.ReportingController,
		reportingInstance:   event.ReportingInstance,
		firstTimestamp:      event.DeprecatedFirstTimestamp,
		lastTimestamp:       event.DeprecatedLastTimestamp,
		eventTime:           event.EventTime,
		count:               event.DeprecatedCount,
	}
	if event.Series != nil {
		view.series = &corev1.EventSeries{Count: event.Series.Count, LastObservedTime: event.Series.LastObservedTime}
	}
	return eventCells(view, now)
}

// eventCells prefers the series' figures for recurring events and falls back
// from the old timestamps to eventTime for events written by the new API.
func eventCells(event eventView, now time.Time) []any {
	firstSeen := age(event.firstTimestamp, now)
	if event.firstTimestamp.IsZero() {
		firstSeen = microAge(event.eventTime, now)
	}
	lastSeen := age(event.lastTimestamp, now)
	if event.lastTimestamp.IsZero() {
		lastSeen = firstSeen
	}
	count := event.count
	switch {
	case event.series != nil:
		lastSeen = microAge(event.series.LastObservedTime, now)
		count = event.series.Count
	case count == 0:
		// Singleton events written through events.k8s.io have no count.
		count = 1
	}

	object := strings.ToLower(event.regarding.Kind)
	if event.regarding.Name != "" {
		object = fmt.Sprintf("%s/%s", object, event.regarding.Name)
	}

	return []any{
		lastSeen,
		event.eventType,
		event.reason,
		object,
		event.regarding.FieldPath,
		eventSource(event),
		strings.TrimSpace(event.message),
		firstSeen,
		int64(count),
		event.name,
	}
}

// eventSource is "component, host", taking the reporting controller and
// instance where the legacy source fields are empty.
func eventSource(event eventView) string {
	component := cmp.Or(event.source.Component, event.reportingController)
	host := cmp.Or(event.source.Host, event.reportingInstance)
	if host == "" {
		return component
	}
	return component + ", " + host
}
