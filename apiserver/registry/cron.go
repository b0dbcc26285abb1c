package registry

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// cronField is one column of a standard (five-field) cron schedule.
type cronField struct {
	name     string
	min, max int
	names    map[string]int
}

var cronFields = []cronField{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: map[string]int{
		"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
	}},
	{name: "day of week", min: 0, max: 6, names: map[string]int{
		"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
	}},
}

var cronDescriptors = map[string]bool{
	"@yearly": true, "@annually": true, "@monthly": true, "@weekly": true,
	"@daily": true, "@midnight": true, "@hourly": true,
}

// parseCronSchedule checks a CronJob schedule with the syntax the
// CronJob controller accepts: five fields or a descriptor.
func parseCronSchedule(schedule string) error {
	if strings.HasPrefix(schedule, "@") {
		if cronDescriptors[schedule] {
			return nil
		}
		if d, ok := strings.CutPrefix(schedule, "@every "); ok {
			if _, err := time.ParseDuration(d); err != nil {
				return fmt.Errorf("failed to parse duration %s: %w", schedule, err)
			}
			return nil
		}
		return fmt.Errorf("unrecognized descriptor: %s", schedule)
	}
	parts := strings.Fields(schedule)
	if len(parts) != len(cronFields) {
		return fmt.Errorf("expected exactly %d fields, found %d: %v", len(cronFields), len(parts), parts)
	}
	for i, part := range parts {
		if err := cronFields[i].check(part); err != nil {
			return err
		}
	}
	return nil
}

func (f cronField) check(expr string) error {
	for _, item := range strings.Split(expr, ",") {
		rangePart, step, hasStep := strings.Cut(item, "/")
		if hasStep {
			n, err := strconv.Atoi(step)
			if err != nil || n <= 0 {
				return fmt.Errorf("failed to parse int from %s: step must be a positive number", step)
			}
		}
		if rangePart == "*" || rangePart == "?" {
			continue
		}
		lo, hi, isRange := strings.Cut(rangePart, "-")
		start, err := f.value(lo)
		if err != nil {
			return err
		}
		end := start
		if isRange {
			if end, err = f.value(hi); err != nil {
				return err
			}
		}
		if start < f.min || end > f.max {
			return fmt.Errorf("%s value out of range (%d - %d): %s", f.name, f.min, f.max, rangePart)
		}
		if start > end {
			return fmt.Errorf("beginning of range (%d) beyond end of range (%d): %s", start, end, rangePart)
		}
	}
	return nil
}

func (f cronField) value(s string) (int, error) {
	if v, ok := f.names[strings.ToLower(s)]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("failed to parse int from %s: %w", s, err)
	}
	if v < 0 {
		return 0, fmt.Errorf("negative number (%d) not allowed: %s", v, s)
	}
	return v, nil
}
