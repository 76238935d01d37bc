package report

import (
	"fmt"
	"time"
)

// Date is a calendar day, independent of any timezone.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate parses YYYY-MM-DD and rejects anything time.Parse would normalise.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("parse date %q: want YYYY-MM-DD: %w", s, err)
	}
	if t.Year() < 1970 || t.Year() > 2105 {
		// ClickHouse's Date holds 1970..2105 (UInt16 days).
		return Date{}, fmt.Errorf("parse date %q: year outside 1970..2105", s)
	}
	return DateOf(t), nil
}

// DateOf returns t's calendar day in t's location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{y, m, d}
}

// String formats YYYY-MM-DD.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// AddDays returns the day n days later (n may be negative).
func (d Date) AddDays(n int) Date {
	return DateOf(time.Date(d.Year, d.Month, d.Day+n, 12, 0, 0, 0, time.UTC))
}

// Start returns the first instant of the day in loc.
func (d Date) Start(loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
}

// Before reports whether d is earlier than o.
func (d Date) Before(o Date) bool { return d.utc().Before(o.utc()) }

func (d Date) utc() time.Time { return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC) }

// Yesterday returns the day before now's calendar day in loc.
func Yesterday(now time.Time, loc *time.Location) Date { return DateOf(now.In(loc)).AddDays(-1) }
