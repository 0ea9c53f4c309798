package redact

import (
	"context"
	"fmt"
	"log/slog"
)

// Handler is a slog.Handler that scrubs a record's message and its
// attributes' values with the scrubber live holds at the time of the
// record, then hands it to the next handler. Strings and errors are
// scrubbed; other values are printed and replaced by their scrubbed text
// only when it differs (numbers, durations and times are left as they are).
type Handler struct {
	next slog.Handler
	live *Live
}

// NewHandler wraps next.
func NewHandler(next slog.Handler, live *Live) *Handler { return &Handler{next: next, live: live} }

func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	s := h.live.Get()
	if len(s.Values()) == 0 {
		return h.next.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, s.String(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(scrubAttr(s, a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs scrubs attrs with the scrubber in force now: they are handed
// to the next handler once, not at every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	s := h.live.Get()
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = scrubAttr(s, a)
	}
	return &Handler{next: h.next.WithAttrs(clean), live: h.live}
}

func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), live: h.live}
}

func scrubAttr(s *Scrubber, a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, s.String(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, x := range g {
			clean[i] = scrubAttr(s, x)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, s.String(x.Error()))
		case nil:
			return a
		default:
			text := fmt.Sprint(x)
			if clean := s.String(text); clean != text {
				return slog.String(a.Key, clean)
			}
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
