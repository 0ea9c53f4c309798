package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"testing"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/redact"
)

func TestString(t *testing.T) {
	s := redact.New("hunter2secret", "hunter2", "abc", "1", "4711", "true", "On", "a-b", "::", "", "redacted")
	for _, tt := range []struct{ in, want string }{
		{"token hunter2secret in text", "token <redacted> in text"},
		{"xhunter2y", "x<redacted>y"}, // long values: inside words too
		{"hunter2secretX", "<redacted>X"},
		{`API_KEY="abc"`, `API_KEY="<redacted>"`}, // short values: whole tokens
		{"abcdef and xabc stay", "abcdef and xabc stay"},
		{"abc", "<redacted>"},
		{"PIN=4711 not 847110", "PIN=<redacted> not 847110"}, // numbers: whole tokens
		{"1 error, needs 1 approval, on true", "1 error, needs 1 approval, on true"},
		{"x a-b y, xa-b, a-bc", "x <redacted> y, xa-b, a-bc"},
		{"std::vector", "std::vector"}, // punctuation-only values are left alone
		{"the marker <redacted> survives", "the marker <redacted> survives"},
		{"", ""},
	} {
		if got := s.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	var none *redact.Scrubber
	if got := none.String("abc"); got != "abc" {
		t.Errorf("a nil scrubber changed text: %q", got)
	}
}

func TestStringCut(t *testing.T) {
	s := redact.New("sk-long-value", "abc")
	for _, tt := range []struct{ in, want string }{
		{"failed: TOKEN=sk-long-va...", "failed: TOKEN=<redacted>..."},
		{"failed: abc sk-long-value x...", "failed: <redacted> <redacted> x..."},
		{"not cut: sk-long-va", "not cut: sk-long-va"}, // a different value, in full
	} {
		if got := s.StringCut(tt.in, "..."); got != tt.want {
			t.Errorf("StringCut(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFromConfigsAndErr(t *testing.T) {
	cfg := &berth.Config{Workloads: map[berth.WorkloadID]berth.Workload{
		"t/a": {Env: berth.EnvOf(map[string]string{"API_KEY": "xyz", "TOKEN": "sk-long-value"})},
	}}
	s := redact.FromConfigs(nil, cfg)
	cause := fs.ErrPermission
	err := s.Err(fmt.Errorf("apply t/a with TOKEN=sk-long-value API_KEY=xyz: %w", cause))
	if got := err.Error(); got != "apply t/a with TOKEN=<redacted> API_KEY=<redacted>: permission denied" {
		t.Errorf("scrubbed error: %q", got)
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Error("the cause was lost: errors.Is no longer finds it")
	}
	if s.Err(nil) != nil {
		t.Error("Err(nil) is not nil")
	}
	plain := errors.New("nothing secret")
	if s.Err(plain) != plain {
		t.Error("an error without a value was wrapped")
	}
}

func TestHandler(t *testing.T) {
	var live redact.Live
	var buf bytes.Buffer
	log := slog.New(redact.NewHandler(slog.NewJSONHandler(&buf, nil), &live))
	log.Info("before: abc") // nothing set: nothing scrubbed
	live.Set(redact.New("abc", "sk-long-value"))
	log.With("component", "x sk-long-value").WithGroup("g").Warn("value abc in message",
		"err", errors.New("quoting \"abc\""), "s", "sk-long-value", "n", 1,
		slog.Group("inner", "v", "abc"), "any", []string{"sk-long-value"})
	out := buf.String()
	if !strings.Contains(out, "before: abc") {
		t.Errorf("a record before the scrubber was set changed:\n%s", out)
	}
	second := out[strings.Index(out, "\n")+1:]
	if strings.Contains(second, "abc") || strings.Contains(second, "sk-long-value") {
		t.Errorf("a value is in the log:\n%s", second)
	}
	for _, want := range []string{`"msg":"value <redacted> in message"`, `"err":"quoting \"<redacted>\""`, `"n":1`, `"component":"x <redacted>"`} {
		if !strings.Contains(second, want) {
			t.Errorf("log lacks %s:\n%s", want, second)
		}
	}
}
