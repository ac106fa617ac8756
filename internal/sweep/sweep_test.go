package sweep

import (
	"strings"
	"testing"
	"time"
)

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute,
		"1h30m": 90 * time.Minute, "0d1s": time.Second, "30d": 720 * time.Hour,
	} {
		if got, err := ParseAge(in); err != nil || got != want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "7", "-1h", "+1h", "0d", "0s", "1dd", "1.5d", "d7", "7days", "1w", "99999d", "1d-1h"} {
		if got, err := ParseAge(in); err == nil {
			t.Errorf("ParseAge(%q) = %v, want an error", in, got)
		}
	}
}

// FuzzParseAge: no panic; an accepted age is positive; a positive Go duration means the same;
// N days are N*24h.
func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"7d", "36h", "1d12h", "90m", "-1h", "1d-1h", "2562047h", "65535d2562047h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseAge(s)
		if err != nil {
			return
		}
		if d <= 0 {
			t.Fatalf("ParseAge(%q) = %v, not positive", s, d)
		}
		if !strings.Contains(s, "d") {
			if want, err := time.ParseDuration(s); err != nil || want != d {
				t.Fatalf("ParseAge(%q) = %v, time.ParseDuration says %v, %v", s, d, want, err)
			}
		}
	})
}
