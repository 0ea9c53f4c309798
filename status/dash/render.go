package dash

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"time"

	"github.com/berth-gpu/berth/status"
)

//go:embed templates
var templates embed.FS

// pages are parsed once: each page's template with the shared layout.
var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"workloads", "workload", "queues", "gpus", "teams", "audit"} {
		out[name] = template.Must(template.New("layout.html").ParseFS(templates, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}()

// page is what the layout shows around every page.
type page struct {
	Nav      string // which tab is current
	Title    string
	Revision string
	Applied  string
	Commit   link
	Error    string
	Invalid  []string
	Now      string
}

func newPage(d Data, nav, title string) page {
	p := page{Nav: nav, Title: title, Revision: d.Revision, Error: d.Error, Invalid: d.Invalid, Commit: d.commit()}
	if d.Applied != d.Revision {
		p.Applied = d.Applied
	}
	if !d.Now.IsZero() {
		p.Now = status.FormatTime(d.Now)
	}
	return p
}

// render executes a page into w through a buffer, so that a template
// error is returned before anything is half written.
func render(w io.Writer, name string, v any) error {
	t, ok := pages[name]
	if !ok {
		return fmt.Errorf("dash: no page %q", name)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		return fmt.Errorf("dash: page %s: %w", name, err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return status.FormatTime(t)
}
